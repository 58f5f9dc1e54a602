//! A smoke run of the benchmark harness at a low rate, so it cannot rot: it
//! starts Hub and the mock provider, runs both scenarios, and reports every
//! table and the chart without a failed request.

use std::process::Command;

#[test]
fn the_harness_runs_at_a_low_rate() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let hub = root.join("target/debug/hub");
    assert!(hub.exists(), "{} is missing: cargo build -p hub-server", hub.display());
    let out = hub_e2e::temp_dir("bench-smoke");
    let run = Command::new(env!("CARGO_BIN_EXE_hub-bench"))
        .args(["--targets", "hub", "--rates", "20", "--seconds", "1", "--runs", "1"])
        .args(["--chunks", "5", "--streams", "10", "--pin", "off", "--hub"])
        .arg(&hub)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run hub-bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    for scenario in ["| non-streaming | 20/s | hub |", "| streaming | 20/s | hub |"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(scenario))
            .unwrap_or_else(|| panic!("no row {scenario}:\n{stdout}"));
        assert!(row.contains("| 0/20 |"), "failed requests: {row}");
    }
    assert!(stdout.contains("| hub | 20/s |"), "sustained rate missing:\n{stdout}");
    assert!(stdout.contains("10 |"), "streams did not all complete:\n{stdout}");
    let svg = std::fs::read_to_string(out.join("overhead.svg")).expect("chart written");
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
}
