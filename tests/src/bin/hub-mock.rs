//! The mock provider as a process, for tests written outside Rust (the admin
//! site's browser tests, the AIGNE client test): prints
//! `mock listening on http://ADDR` and answers every model with the default
//! behaviour until killed, but `gpt-4.1-nano`, which reports 8 of its 12
//! prompt tokens as read from the provider's prompt cache.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mock = hub_e2e::mock::MockProvider::start().await;
    let cached = hub_e2e::mock::Behavior {
        cached_tokens: 8,
        ..Default::default()
    };
    mock.set("gpt-4.1-nano", cached);
    println!("mock listening on http://{}", mock.addr);
    std::future::pending::<()>().await;
}
