//! The mock provider as a process, for tests written outside Rust (the admin
//! site's browser tests, the AIGNE client test): prints
//! `mock listening on http://ADDR` and answers every model with the default
//! behaviour until killed.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mock = hub_e2e::mock::MockProvider::start().await;
    println!("mock listening on http://{}", mock.addr);
    std::future::pending::<()>().await;
}
