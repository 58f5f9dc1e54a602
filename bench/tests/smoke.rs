//! A smoke run of the benchmark harness at a low rate, so it cannot rot: it
//! starts Hub and the mock provider, runs both scenarios, and reports every
//! table and the chart without a failed request.

use std::process::Command;
use std::time::Duration;

#[test]
fn the_harness_runs_at_a_low_rate() {
    // The hub this cargo run built (in its target dir and profile), not
    // whatever `target/debug/hub` holds.
    let hub = hub_e2e::bins::hub();
    let out = hub_e2e::temp_dir("bench-smoke");
    let mut bench = Command::new(env!("CARGO_BIN_EXE_hub-bench"));
    bench
        .args(["--targets", "hub", "--rates", "20", "--seconds", "1", "--runs", "1"])
        .args(["--chunks", "5", "--streams", "10", "--pin", "off", "--hub"])
        .arg(hub)
        .arg("--out")
        .arg(&out);
    // In its own process group, so a run that hangs or a failing test stops
    // the Hub processes it started too.
    let stdout = hub_e2e::run_bounded(bench, Duration::from_secs(300), "hub-bench").unwrap_or_else(|e| panic!("{e}"));
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
