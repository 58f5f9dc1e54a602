//! The admin site built into `hub` (functions/server/build.rs): `hub serve`
//! with no `--ui-dir` shows it at `/`, its hashed assets cached for a year,
//! the API beside it unchanged. Needs the site's packages installed
//! (`npm ci` in admin-ui, as scripts/install-test-tools does) when `hub` is built.

use hub_e2e::{Api, HubServer, Launch};
use std::path::Path;

/// The first `./assets/….js` the page loads.
fn script_of(page: &str) -> Option<String> {
    let start = page.find("assets/")?;
    let end = start + page[start..].find(".js")? + 3;
    Some(format!("/{}", &page[start..end]))
}

#[tokio::test]
async fn hub_serves_the_site_built_into_it_at_the_root() {
    let hub = tokio::task::spawn_blocking(|| HubServer::start(Path::new(env!("CARGO_BIN_EXE_hub")), Launch::default()))
        .await
        .unwrap();
    let api = Api::new(&hub.base);
    let get = |path: String| api.http.get(format!("{}{path}", api.base)).send();

    let root = get("/".into()).await.unwrap();
    assert_eq!(root.status(), 200);
    let headers = root.headers().clone();
    let page = root.text().await.unwrap();
    assert!(
        page.contains(r#"<div id="root">"#),
        "`/` is not the admin site (was admin-ui/node_modules installed when hub was built?): {page}"
    );
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        headers["cache-control"], "no-cache",
        "the page itself is always revalidated"
    );
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));

    let script = script_of(&page).unwrap_or_else(|| panic!("no script in the page: {page}"));
    let asset = get(script.clone()).await.unwrap();
    assert_eq!(asset.status(), 200, "{script}");
    assert_eq!(asset.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert!(asset.bytes().await.unwrap().len() > 10_000, "the site's code");

    // The site's own routes load the page; the API's paths stay the API's.
    let deep = get("/users/42".into()).await.unwrap();
    assert_eq!(deep.text().await.unwrap(), page);
    let (status, v) = api.call(reqwest::Method::GET, "/api/nope", "hub_x", None).await;
    assert_eq!(status, 404, "{v}");
    assert!(v["error"]["message"].is_string());
}
