//! Patron's domain, pure: identities, money and points, the programme and its rules, the ledger
//! and its lots, tiers and rewards, and the engine that turns `(programme, member, event)` into
//! effects. Nothing here does IO, knows a database or speaks HTTP.

pub mod engine;
pub mod event;
pub mod ids;
pub mod ledger;
pub mod lots;
pub mod member;
pub mod money;
pub mod outreach;
pub mod phone;
pub mod programme;
pub mod reward;
pub mod rules;
pub mod segment;
pub mod tiers;
pub mod time;

pub use ids::{EventId, LotId, MemberId, RewardId, TenantId, TransactionId};
pub use money::{Money, Points};
pub use phone::Phone;
