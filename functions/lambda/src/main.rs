//! The Lambda bootstrap: Hub behind a Function URL with response streaming,
//! and its scheduled jobs on an EventBridge schedule.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    hub_lambda::run().await
}
