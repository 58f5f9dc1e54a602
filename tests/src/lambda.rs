//! Hub as an AWS Lambda function under cargo-lambda's emulator: the Runtime
//! API and Function URLs (`cargo lambda watch --only-lambda-apis`) on a free
//! port, and prebuilt function processes polling it, as Lambda runs one
//! execution environment per concurrent invocation. Everything started is
//! stopped (by process group) when dropped.

use crate::ADMIN_KEY;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// cargo-lambda: on PATH, or in the repository's `.venv-cargo-lambda`.
fn cargo_lambda() -> PathBuf {
    let local = crate::worker::repo_root().join(".venv-cargo-lambda/bin/cargo-lambda");
    if local.exists() {
        return local;
    }
    PathBuf::from("cargo-lambda")
}

/// The emulator and the function processes behind one Function URL.
pub struct LambdaServer {
    /// The Function URL (`…/lambda-url/_`): append Hub's paths to it.
    pub base: String,
    /// The Invoke API's URL for the function, for events that are not
    /// Function URL requests (EventBridge's schedule): POST the event.
    pub invocations: String,
    emulator: Child,
    functions: Vec<Child>,
    pub dir: PathBuf,
}

impl LambdaServer {
    /// Starts the emulator and `instances` function processes of `bin` on `database_url`.
    pub fn start(bin: &Path, database_url: &str, instances: usize) -> LambdaServer {
        Self::start_with(bin, database_url, instances, &[])
    }

    /// The same, the function processes with `env` added to their environment.
    pub fn start_with(bin: &Path, database_url: &str, instances: usize, env: &[(&str, &str)]) -> LambdaServer {
        let dir = crate::temp_dir("lambda");
        let port = crate::free_port();
        let mut cmd = Command::new(cargo_lambda());
        cmd.args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "-A",
            "127.0.0.1",
            "-P",
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("emulator.log")).unwrap())
        .stderr(std::fs::File::create(dir.join("emulator.err")).unwrap());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let emulator = cmd
            .spawn()
            .expect("start cargo lambda watch (install cargo-lambda: pip install cargo-lambda)");
        let mut server = LambdaServer {
            base: format!("http://127.0.0.1:{port}/lambda-url/_"),
            invocations: format!("http://127.0.0.1:{port}/2015-03-31/functions/_/invocations"),
            emulator,
            functions: Vec::new(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            // An emulator that could not bind its port has exited: say so
            // rather than wait (or later talk to whatever holds the port).
            assert!(
                server.emulator.try_wait().unwrap().is_none(),
                "the Lambda emulator exited: {}",
                std::fs::read_to_string(server.dir.join("emulator.err")).unwrap_or_default()
            );
            assert!(
                Instant::now() < deadline,
                "the Lambda emulator did not start: {}",
                std::fs::read_to_string(server.dir.join("emulator.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The first instance applies the schema; then the others join.
        server.spawn_function(bin, port, database_url, true, env);
        server.wait_ready();
        for _ in 1..instances {
            server.spawn_function(bin, port, database_url, false, env);
        }
        server
    }

    fn spawn_function(&mut self, bin: &Path, port: u16, database_url: &str, migrate: bool, env: &[(&str, &str)]) {
        let n = self.functions.len();
        let mut cmd = Command::new(bin);
        cmd.env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("HUB_DATABASE_URL", database_url)
            .env("HUB_MASTER_KEY", crate::worker::MASTER_KEY)
            .env("HUB_ADMIN_KEY", ADMIN_KEY)
            .env("HUB_MIGRATE", if migrate { "1" } else { "0" })
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.dir.join(format!("function-{n}.log"))).unwrap())
            .stderr(std::fs::File::create(self.dir.join(format!("function-{n}.err"))).unwrap());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        self.functions
            .push(cmd.spawn().expect("start the Lambda function process"));
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
                .arg(format!("{}/readyz", self.base))
                .output();
            if out.is_ok_and(|o| o.stdout == b"200") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Lambda function never became ready:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The first function process's id (its process group), for CPU and memory.
    pub fn function_pid(&self) -> u32 {
        self.functions[0].id()
    }

    pub fn logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            all.push_str(&format!("== {}\n", entry.path().display()));
            all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        all
    }
}

impl Drop for LambdaServer {
    fn drop(&mut self) {
        for f in &mut self.functions {
            crate::stop_group(f, Duration::from_secs(5));
        }
        crate::stop_group(&mut self.emulator, Duration::from_secs(5));
    }
}
