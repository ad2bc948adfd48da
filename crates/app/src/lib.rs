//! Patron's application layer: one set of typed commands and queries, each taking the
//! caller's [`Grant`] and checking its [`Permission`] itself, used alike by the API, the web
//! pages, the CLI and the importer. The edges turn their requests (JSON, forms, CSV rows) into
//! commands and the answers ([`AppError`] too) into theirs; what is allowed and what an event
//! is gets decided here and in core, once.

pub mod commands;
pub mod error;
pub mod grant;

pub use commands::{
    body_hash, voucher_code, AdjustPoints, CancelVoucher, Command, Engage, Enrol, HoldTier,
    PurchaseWithVoucher, PurchaseWithVoucherAnswer, RecordPurchase, Redeem, Refund, Sending,
    UseVoucher, Void,
};
pub use error::{AppError, ErrorKind};
pub use grant::{allows, Grant, Permission, ROLES};

use patron_core::engine::Rejection;
use patron_core::programme::ProgrammeDefinition;
use patron_core::reward::VoucherStatus;
use patron_core::{EventId, MemberId, Points, RewardId, TenantId};
use patron_store::members::{MergeReport, MergeRequest};
use patron_store::programmes::TierImpact;
use patron_store::{EventError, EventResult, Journal, MemberRef, MemberView, Store, VoucherView};

/// The commands and queries, over one store and its journal.
#[derive(Clone)]
pub struct App {
    store: Store,
    journal: Journal,
}

impl App {
    pub fn new(store: Store, journal: Journal) -> App {
        App { store, journal }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Records one event.
    pub async fn submit(&self, grant: &Grant, sending: Sending) -> Result<EventResult, AppError> {
        let event = sending.prepare(grant, chrono::Utc::now())?;
        Ok(self.journal.submit(event).await?)
    }

    /// Records events together (one journal batch); each is answered on its own, in order.
    pub async fn submit_all(
        &self,
        grant: &Grant,
        sendings: Vec<Sending>,
    ) -> Vec<Result<EventResult, AppError>> {
        let now = chrono::Utc::now();
        let mut slots = Vec::with_capacity(sendings.len());
        let mut events = Vec::new();
        for sending in sendings {
            match sending.prepare(grant, now) {
                Ok(event) => {
                    slots.push(Ok(events.len()));
                    events.push(event);
                }
                Err(error) => slots.push(Err(error)),
            }
        }
        let mut answers: Vec<Option<Result<EventResult, AppError>>> = if events.is_empty() {
            Vec::new()
        } else {
            self.journal
                .submit_all(events)
                .await
                .into_iter()
                .map(|answer| Some(answer.map_err(AppError::from)))
                .collect()
        };
        slots
            .into_iter()
            .map(|slot| match slot {
                Ok(position) => answers[position].take().expect("each answer used once"),
                Err(error) => Err(error),
            })
            .collect()
    }

    pub async fn record_purchase(
        &self,
        grant: &Grant,
        id: EventId,
        command: RecordPurchase,
    ) -> Result<EventResult, AppError> {
        self.submit(grant, Sending::new(id, command)).await
    }

    /// Records a sale and the use of a voucher on it in one journal batch; the use's id is the
    /// sale's with `-voucher` after it, so a resend repeats both harmlessly. Refused as a
    /// whole (nothing sent) when the caller may not record the sale or the code cannot be a
    /// voucher's; otherwise both answers.
    pub async fn purchase_with_voucher(
        &self,
        grant: &Grant,
        id: EventId,
        command: PurchaseWithVoucher,
    ) -> Result<PurchaseWithVoucherAnswer, AppError> {
        let code = voucher_code(&command.code).map_err(|mut error| {
            error.field = Some("voucher".into());
            error
        })?;
        let voucher_id = EventId::parse(&format!("{id}-voucher"))
            .map_err(|error| AppError::invalid("id", error.to_string()))?;
        let store = command.purchase.purchase.store.clone();
        let now = chrono::Utc::now();
        let purchase = Sending::new(id, command.purchase.clone()).prepare(grant, now)?;
        let voucher = Sending::new(
            voucher_id,
            UseVoucher {
                code: code.clone(),
                store,
            },
        )
        .prepare(grant, now)?;
        // A resend is the journal's to answer with the first answers, whatever has changed.
        let sent_before = self
            .store
            .event_result(grant.tenant_id, purchase.id.as_str())
            .await?
            .is_some();
        if !sent_before {
            self.quote_purchase_with_voucher(grant, &command.purchase, &code, now)
                .await?;
        }
        let mut answers = self
            .journal
            .submit_all(vec![purchase, voucher])
            .await
            .into_iter()
            .map(|answer| answer.map_err(AppError::from));
        let missing = || Err(AppError::internal("the journal answered fewer events"));
        Ok(PurchaseWithVoucherAnswer {
            purchase: answers.next().unwrap_or_else(missing),
            voucher: answers.next().unwrap_or_else(missing),
        })
    }

    /// Until the journal records a sale and its voucher use as one, checks before sending that
    /// neither would go through without the other for a reason known now: the voucher is
    /// the member's, issued and not expired, and the member has the points paid. The
    /// journal's engine decides again when they are recorded.
    async fn quote_purchase_with_voucher(
        &self,
        grant: &Grant,
        purchase: &RecordPurchase,
        code: &str,
        now: patron_core::time::Timestamp,
    ) -> Result<(), AppError> {
        let refused = |error: EventError| {
            let mut error = AppError::from(error);
            error.field = Some("voucher".into());
            error
        };
        let member = match self
            .store
            .member(grant.tenant_id, &purchase.member, now)
            .await
        {
            Ok(member) => member,
            Err(patron_store::StoreError::NotFound { .. }) => {
                return Err(refused(EventError::VoucherNotFound))
            }
            Err(error) => return Err(error.into()),
        };
        let member_id = MemberId::parse(&member.id).map_err(AppError::internal)?;
        let vouchers = self.store.vouchers(grant.tenant_id, member_id).await?;
        let voucher = vouchers
            .iter()
            .find(|voucher| voucher.code == code)
            .ok_or_else(|| refused(EventError::VoucherNotFound))?;
        if voucher.status != VoucherStatus::Issued.as_str() {
            let status = VoucherStatus::parse(&voucher.status).unwrap_or(VoucherStatus::Used);
            return Err(refused(EventError::Rejected(Rejection::VoucherNotUsable(
                status,
            ))));
        }
        let expires_at = chrono::DateTime::parse_from_rfc3339(&voucher.expires_at)
            .map_err(AppError::internal)?;
        if expires_at <= now {
            return Err(refused(EventError::Rejected(Rejection::VoucherExpired)));
        }
        let paid = purchase.purchase.points_paid;
        if paid.0 > member.available {
            return Err(AppError::from(EventError::Rejected(
                Rejection::InsufficientPoints {
                    available: Points(member.available.max(0)),
                    needed: paid,
                    field: "points_paid",
                },
            )));
        }
        Ok(())
    }

    pub async fn refund(
        &self,
        grant: &Grant,
        id: EventId,
        command: Refund,
    ) -> Result<EventResult, AppError> {
        self.submit(grant, Sending::new(id, command)).await
    }

    pub async fn void(
        &self,
        grant: &Grant,
        id: EventId,
        command: Void,
    ) -> Result<EventResult, AppError> {
        self.submit(grant, Sending::new(id, command)).await
    }

    pub async fn enrol(
        &self,
        grant: &Grant,
        id: EventId,
        command: Enrol,
    ) -> Result<EventResult, AppError> {
        self.submit(grant, Sending::new(id, command)).await
    }

    pub async fn engage(
        &self,
        grant: &Grant,
        id: EventId,
        command: Engage,
    ) -> Result<EventResult, AppError> {
        self.submit(grant, Sending::new(id, command)).await
    }

    pub async fn redeem(
        &self,
        grant: &Grant,
        id: EventId,
        command: Redeem,
    ) -> Result<EventResult, AppError> {
        self.submit(grant, Sending::new(id, command)).await
    }

    /// A member's own redemption from their member page: no staff grant; the member (signed
    /// in to that page) is the sender and redeems only for themselves.
    pub async fn redeem_own(
        &self,
        tenant_id: TenantId,
        member: MemberId,
        id: EventId,
        reward_id: RewardId,
    ) -> Result<EventResult, AppError> {
        let command = Redeem {
            member: MemberRef::Id(member),
            reward_id,
        };
        let event = Sending::new(id, command).into_event(
            tenant_id,
            &format!("member:{member}"),
            None,
            chrono::Utc::now(),
        );
        Ok(self.journal.submit(event).await?)
    }

    pub async fn use_voucher(
        &self,
        grant: &Grant,
        id: EventId,
        command: UseVoucher,
    ) -> Result<EventResult, AppError> {
        self.submit(grant, Sending::new(id, command)).await
    }

    pub async fn cancel_voucher(
        &self,
        grant: &Grant,
        id: EventId,
        command: CancelVoucher,
    ) -> Result<EventResult, AppError> {
        self.submit(grant, Sending::new(id, command)).await
    }

    pub async fn adjust_points(
        &self,
        grant: &Grant,
        id: EventId,
        command: AdjustPoints,
    ) -> Result<EventResult, AppError> {
        self.submit(grant, Sending::new(id, command)).await
    }

    pub async fn hold_tier(
        &self,
        grant: &Grant,
        id: EventId,
        command: HoldTier,
    ) -> Result<EventResult, AppError> {
        self.submit(grant, Sending::new(id, command)).await
    }

    /// A member of the grant's tenant, with balances and tier progress now (by id or phone).
    pub async fn member(
        &self,
        grant: &Grant,
        reference: &MemberRef,
    ) -> Result<MemberView, AppError> {
        grant.require(Permission::Read)?;
        Ok(self
            .store
            .member(grant.tenant_id, reference, chrono::Utc::now())
            .await?)
    }

    /// The id of a member of the grant's tenant (not found for another tenant's).
    pub async fn member_id(
        &self,
        grant: &Grant,
        reference: &MemberRef,
    ) -> Result<MemberId, AppError> {
        grant.require(Permission::Read)?;
        Ok(self.store.member_id(grant.tenant_id, reference).await?)
    }

    /// A member's vouchers.
    pub async fn vouchers(
        &self,
        grant: &Grant,
        member: MemberId,
    ) -> Result<Vec<VoucherView>, AppError> {
        grant.require(Permission::Read)?;
        Ok(self.store.vouchers(grant.tenant_id, member).await?)
    }

    /// Merges `source` into `survivor`, keeping every ledger entry. Audited.
    pub async fn merge(
        &self,
        grant: &Grant,
        survivor: MemberId,
        source: MemberId,
    ) -> Result<MergeReport, AppError> {
        grant.require(Permission::ManageMembers)?;
        Ok(self
            .journal
            .merge(MergeRequest {
                tenant_id: grant.tenant_id,
                survivor,
                source,
                actor: grant.actor.clone(),
            })
            .await?)
    }

    /// Erases a member's personal data; the ledger stays, anonymous. Audited.
    pub async fn erase(&self, grant: &Grant, member: MemberId) -> Result<(), AppError> {
        grant.require(Permission::ManageMembers)?;
        let member = self
            .store
            .member_id(grant.tenant_id, &MemberRef::Id(member))
            .await?;
        Ok(self
            .store
            .erase_member(grant.tenant_id, member, &grant.actor)
            .await?)
    }

    /// Revokes an API key of the grant's tenant. The API forgets its cached grant itself.
    pub async fn revoke_api_key(&self, grant: &Grant, key_id: &str) -> Result<(), AppError> {
        grant.require(Permission::Administer)?;
        Ok(self
            .store
            .revoke_api_key(grant.tenant_id, key_id, &grant.actor)
            .await?)
    }

    /// How many members each tier would gain or lose if `definition` were published now.
    pub async fn tier_impact(
        &self,
        grant: &Grant,
        definition: &ProgrammeDefinition,
    ) -> Result<TierImpact, AppError> {
        grant.require(Permission::ManageProgramme)?;
        Ok(self
            .store
            .tier_impact(grant.tenant_id, definition, chrono::Utc::now())
            .await?)
    }
}
