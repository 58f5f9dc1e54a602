//! Prices that follow the providers: cost rates beside sell rates, synced
//! from a price catalogue (LiteLLM's price map, OpenRouter's model list),
//! long-context tiers, a margin floor, and what happens to a model a price
//! change leaves selling below cost.
//!
//! - [`catalogue`]: the two formats, read into one shape; prices exact.
//! - [`margin`]: sell rates against cost rates (below cost, below the floor,
//!   at a margin).
//! - [`sync`]: matching catalogue entries to models (provider kind and model
//!   name), the changes a sync makes, the admin API and the scheduled job.
//!
//! Every rate change, an admin's or a sync's, is recorded by the schema's
//! triggers (`infra/migrations/0016`) in `rate_changes`; a model that starts
//! selling below cost raises `model.below_cost` the same way.

pub mod catalogue;
pub mod margin;
pub mod sync;

use crate::kinds::named;
pub use catalogue::CatalogueFormat;

named!(
    /// What a price sync does to a model it finds selling below cost.
    BelowCostAction {
        /// Marks it `below_cost` and notifies (always done).
        Flag = "flag",
        /// Also disables it: it is no longer served.
        Disable = "disable",
        /// Raises each rate below the floor to cost plus the `margin_percent`
        /// setting (at least the floor) instead.
        Reprice = "reprice",
    }
);
