//! Outbound safety of `hub serve`: provider URLs that lead to cloud metadata
//! services are refused however they are spelled, when saved and when Hub
//! connects (names are checked after DNS); providers that redirect are
//! reported, not followed. Each test runs in a private network namespace
//! with a fake metadata service (see `hub_e2e::outbound`).

use hub_e2e::mock::MockProvider;
use hub_e2e::outbound::{self, Expect, MetadataTrap};
use hub_e2e::{Api, HubServer, Launch};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

fn allowing() -> Launch {
    Launch {
        env: vec![("HUB_ALLOW_LINK_LOCAL".into(), "1".into())],
        ..Default::default()
    }
}

async fn start_in(launch: Launch, dir: std::path::PathBuf) -> (HubServer, Api) {
    let hub = tokio::task::spawn_blocking(move || HubServer::start_in(bin(), launch, dir))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    (hub, api)
}

#[tokio::test]
async fn metadata_addresses_are_refused_however_spelled() {
    let Some(net) = outbound::private_network("metadata_addresses_are_refused_however_spelled", &[]) else {
        return;
    };
    let trap = MetadataTrap::start(&net).await;
    let rows = outbound::spellings();
    assert!(rows.len() >= 20);
    let dir = hub_e2e::temp_dir("ssrf");

    // Saved while HUB_ALLOW_LINK_LOCAL=1 (misleading URLs stay refused), and
    // each address spelling then really leads to the fake metadata service.
    let (mut hub, api) = start_in(allowing(), dir.clone()).await;
    let saved = outbound::save_allowed(&api, &rows).await;
    outbound::reach_the_trap(&api, &saved, &trap).await;
    hub.terminate(Duration::from_secs(10));
    drop(hub);

    // Without the switch, the same providers are refused before connecting,
    // by the credential test and by model calls; names after resolving.
    let (hub, api) = start_in(Launch::default(), dir).await;
    let (_, key) = api.user_with_key("ssrf", "10").await;
    outbound::refused_before_connecting(&api, &saved, &key, &trap).await;
    let logs = hub.logs();
    assert!(!logs.contains(outbound::METADATA_SECRET), "{logs}");

    // And none of the address or misleading spellings can be saved again;
    // names can (their addresses are checked when Hub connects).
    for p in &saved {
        api.admin(
            reqwest::Method::DELETE,
            &format!("/api/admin/providers/{}", p.provider),
            None,
        )
        .await;
    }
    let names = outbound::save_spellings(&api, &rows).await;
    assert_eq!(names.len(), rows.iter().filter(|(_, e)| *e == Expect::Name).count());
    outbound::refused_before_connecting(&api, &names, &key, &trap).await;
    trap.assert_untouched("after every refusal");
}

#[tokio::test]
async fn provider_redirects_are_reported_not_followed() {
    let Some(net) = outbound::private_network("provider_redirects_are_reported_not_followed", &[]) else {
        return;
    };
    let trap = Arc::new(MetadataTrap::start(&net).await);
    let redirector = MockProvider::start().await;
    let elsewhere = MockProvider::start().await;
    let (_hub, api) = start_in(Launch::default(), hub_e2e::temp_dir("redirect")).await;
    let to_mock = format!("{}/models", elsewhere.base_url());
    let seen_elsewhere = {
        let m = elsewhere.clone();
        move || m.received().len()
    };
    let seen_by_metadata = {
        let t = trap.clone();
        move || t.hits().len()
    };
    outbound::redirects_are_not_followed(
        &api,
        &redirector,
        &[
            (to_mock.as_str(), &seen_elsewhere),
            (
                "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                &seen_by_metadata,
            ),
            ("http://169.254.170.2/v2/credentials/x", &seen_by_metadata),
        ],
    )
    .await;
    assert!(redirector.received().len() >= 5 * 3 * 2 * 2);
    trap.assert_untouched("redirects");
}
