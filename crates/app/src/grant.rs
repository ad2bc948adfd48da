//! Who is calling and what they may do. The API's keys and staff sessions, the web's staff and
//! the CLI all become a [`Grant`]; every command asks it for one [`Permission`], and [`allows`]
//! is the one table of roles and permissions.

use crate::error::AppError;
use patron_core::TenantId;
use patron_store::audit::Actor;
use patron_store::users::Role;

/// What a caller may do. Each command asks for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    Read,
    /// Purchases, refunds, redemptions, vouchers, enrolment, profile updates.
    RecordEvents,
    /// Manual adjustments, voids, merges, erasure, tier holds.
    ManageMembers,
    /// Rewards and stores.
    ManageCatalogue,
    /// Programme drafts and versions.
    ManageProgramme,
    /// API keys, staff users, webhooks, the audit log.
    Administer,
    /// Segments, campaigns, journeys and their channels.
    ManageMarketing,
    /// Bulk downloads of members' personal data (`/v1/exports/members.csv`, `ledger.csv`):
    /// owners and managers only, each download audited.
    ExportPersonalData,
}

impl Permission {
    /// Every permission, in the order of the table in ARCHITECTURE.md.
    pub const ALL: [Permission; 8] = [
        Permission::Read,
        Permission::RecordEvents,
        Permission::ManageMembers,
        Permission::ManageCatalogue,
        Permission::ManageProgramme,
        Permission::ManageMarketing,
        Permission::Administer,
        Permission::ExportPersonalData,
    ];
}

/// Every role, people's and keys'.
pub const ROLES: [Role; 6] = [
    Role::Owner,
    Role::Manager,
    Role::Marketer,
    Role::Cashier,
    Role::Viewer,
    Role::Integration,
];

/// Whether `role` holds `permission`: the one table of roles and permissions.
pub fn allows(role: Role, permission: Permission) -> bool {
    use Permission::*;
    match role {
        Role::Owner => true,
        Role::Manager => permission != Administer,
        Role::Integration => !matches!(permission, Administer | ExportPersonalData),
        Role::Marketer => matches!(
            permission,
            Read | ManageCatalogue | ManageProgramme | ManageMarketing
        ),
        Role::Cashier => matches!(permission, Read | RecordEvents),
        Role::Viewer => permission == Read,
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Grant {
    pub tenant_id: TenantId,
    pub role: Role,
    /// Named in the audit log and as the sender of events.
    pub actor: Actor,
    /// A till's key: its events must name this store.
    pub store_code: Option<String>,
    /// The API's rate limiter's bucket.
    pub bucket: String,
}

impl Grant {
    /// Refuses a caller without `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), AppError> {
        if allows(self.role, permission) {
            return Ok(());
        }
        Err(AppError::forbidden(
            format!(
                "the {} role may not do this ({permission:?} is needed)",
                self.role.as_str()
            ),
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    /// The documented table of roles and permissions, written out: one row per role, `true`
    /// where the role holds the permission, columns in the order of `Permission::ALL`.
    /// ARCHITECTURE.md's Rules is to show the same table.
    const TABLE: [(Role, [bool; 8]); 6] = [
        //             Read  Record Members Catal. Progr. Market. Admin  Export
        (
            Role::Owner,
            [true, true, true, true, true, true, true, true],
        ),
        (
            Role::Manager,
            [true, true, true, true, true, true, false, true],
        ),
        (
            Role::Marketer,
            [true, false, false, true, true, true, false, false],
        ),
        (
            Role::Cashier,
            [true, true, false, false, false, false, false, false],
        ),
        (
            Role::Viewer,
            [true, false, false, false, false, false, false, false],
        ),
        (
            Role::Integration,
            [true, true, true, true, true, true, false, false],
        ),
    ];

    #[test]
    fn every_role_holds_exactly_what_the_table_says() {
        assert_eq!(TABLE.len(), ROLES.len());
        for (role, row) in TABLE {
            assert!(ROLES.contains(&role), "{role:?}");
            for (permission, expected) in Permission::ALL.into_iter().zip(row) {
                assert_eq!(
                    allows(role, permission),
                    expected,
                    "{role:?} × {permission:?}"
                );
            }
        }
    }

    #[test]
    fn a_refusal_names_the_role_and_the_permission() {
        let grant = Grant {
            tenant_id: TenantId::new(),
            role: Role::Cashier,
            actor: Actor::user("u1"),
            store_code: None,
            bucket: "user:u1".into(),
        };
        assert!(grant.require(RecordEvents).is_ok());
        let refused = grant.require(ManageMembers).unwrap_err();
        assert_eq!(refused.kind, crate::ErrorKind::Forbidden);
        assert_eq!(refused.code, "forbidden");
        assert!(refused.message.contains("cashier"), "{}", refused.message);
        assert!(
            refused.message.contains("ManageMembers"),
            "{}",
            refused.message
        );
    }
}
