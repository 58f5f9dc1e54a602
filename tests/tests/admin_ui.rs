//! The admin site in a real browser: its unit tests (Vitest), then its
//! end-to-end run (Playwright on Debian's Chromium) against a real `hub serve`
//! and the mock provider, which signs in, sets up a provider, credential,
//! model, user and key, streams a playground chat, finds the call, grants
//! credits, and checks what a member sees; then sign-in as people do: the
//! Sign-in settings set through the page, a new person signing up with single
//! sign-on at a real OpenID provider, a key created with the session's CSRF
//! token, signing out and in again, an email link through a real SMTP server,
//! and sessions ended from another browser; then selling credits: Stripe set up
//! in Settings, a pack and redemption codes made on the Billing page, the new
//! person buying the pack through a stand-in of Stripe's checkout (its webhook
//! signed by the official `stripe` library) and redeeming a code, and the
//! operator finding the sale; notifications: a webhook added on the Webhooks
//! page (its secret shown once) delivering a test to a receiver the run
//! starts on loopback, resent, rotated and deleted; credit that expires on
//! the user's and the customer's pages; a customer's mail choices kept; then
//! every page in a browser set to English, Chinese and Japanese (no missing
//! message, no English left, dates written the language's way) and the
//! language chooser; then a fresh `hub serve` (the site built in) where the
//! owner goes through the guided set-up against the mock provider, copies the
//! OpenAI SDK snippet and runs it with the published `openai` package, and gets
//! a playground answer; then axe-core on every page, main dialog and detail in
//! the light and the dark theme (no serious or critical violation), every page
//! at a 390 px phone width without sideways scrolling, the site by keyboard
//! alone, and the users list searched by Hub. Screenshots of every page land in
//! `admin-ui/test-output/screenshots/` (each language's in its `languages/`).

use hub_e2e::node::run_script;
use hub_e2e::worker::repo_root;
use std::time::Duration;

#[test]
fn admin_site_unit_tests() {
    let dir = repo_root().join("admin-ui");
    if let Err(e) = run_script(&dir, "test", &[], Duration::from_secs(300)) {
        panic!("{e}");
    }
}

#[test]
fn admin_site_in_a_real_browser() {
    let root = repo_root();
    // The hub this cargo run built (its target dir and profile), not whatever
    // `target/debug/hub` holds.
    let hub = hub_e2e::bins::hub().display().to_string();
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium (scripts/install-test-tools does)"
    );
    let env = [
        ("HUB_BIN", hub),
        ("HUB_MOCK_BIN", env!("CARGO_BIN_EXE_hub-mock").to_string()),
        ("HUB_STRIPE_BIN", env!("CARGO_BIN_EXE_hub-stripe").to_string()),
        ("CHROMIUM_BIN", chromium),
    ];
    match run_script(&root.join("admin-ui"), "e2e", &env, Duration::from_secs(900)) {
        Ok(out) => println!("{out}"),
        Err(e) => panic!("{e}"),
    }
}
