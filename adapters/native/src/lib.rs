//! The core's ports on a native tokio runtime, shared by the `hub` server and
//! the AWS Lambda function.

mod journal;
mod runtime;
mod upstream;

pub use journal::FileJournal;
pub use runtime::{OsRng, SystemClock, Tracker};
pub use upstream::ReqwestUpstream;
