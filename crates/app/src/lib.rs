//! Patron's application layer: one set of typed commands and queries, each taking the
//! caller's [`Grant`] and checking its [`Permission`] itself, used alike by the API, the web
//! pages, the CLI and the importer. The edges turn their requests (JSON, forms, CSV rows) into
//! commands and the answers ([`AppError`] too) into theirs; what is allowed and what an event
//! is gets decided here and in core, once.

pub mod campaigns;
pub mod commands;
pub mod dispatch;
pub mod error;
pub mod grant;
pub mod impact;
pub mod segments;

pub use commands::{
    body_hash, voucher_code, AdjustPoints, CancelVoucher, Command, Engage, Enrol, HoldTier,
    PurchaseWithVoucher, PurchaseWithVoucherAnswer, RecordPurchase, Redeem, Refund, Sending,
    UseVoucher, Void,
};
pub use error::{AppError, ErrorKind};
pub use grant::{allows, Grant, Permission, ROLES};
pub use impact::ImpactCount;

use patron_core::programme::ProgrammeDefinition;
use patron_core::{EventId, MemberId, RewardId, TenantId};
use patron_store::members::{MergeReport, MergeRequest};
use patron_store::{EventError, EventResult, Journal, MemberRef, MemberView, Store, VoucherView};

/// The commands and queries, over one store and its journal.
#[derive(Clone)]
pub struct App {
    store: Store,
    journal: Journal,
    impacts: impact::ImpactCounts,
    segments: segments::Segments,
    outbox: dispatch::Outbox,
    /// One per `App` clone: the background tasks stop when theirs is the last.
    alive: std::sync::Arc<()>,
}

impl App {
    pub fn new(store: Store, journal: Journal) -> App {
        App {
            store,
            journal,
            impacts: impact::ImpactCounts::default(),
            segments: segments::Segments::default(),
            outbox: dispatch::Outbox::default(),
            alive: std::sync::Arc::new(()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// With the server's secret key, which seals the tenants' messaging accounts at rest.
    pub fn with_secret_key(mut self, key: [u8; 32]) -> App {
        self.outbox = dispatch::Outbox::with_key(key);
        self
    }

    /// Lets messaging accounts name other provider addresses and local SMTP hosts (tests,
    /// closed networks).
    pub fn allowing_local_targets(mut self) -> App {
        self.outbox.local_targets = true;
        self
    }

    /// Starts the campaigns whose time has come and sends the messages due, every
    /// `interval`, until every other clone of this `App` is dropped: spawn it once per process.
    pub fn dispatcher(
        &self,
        interval: std::time::Duration,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let app = self.clone();
        async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if std::sync::Arc::strong_count(&app.alive) <= 1 {
                    return;
                }
                if let Err(error) = app.start_due_campaigns().await {
                    tracing::warn!(%error, "campaigns not started");
                }
                loop {
                    match app.dispatch_due(chrono::Utc::now()).await {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%error, "messages not dispatched");
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Keeps the live segments current, for ever: spawn it once per process.
    pub fn segments_refresher(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.segments.refresher(self.store.clone())
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

    /// Records a sale and the use of a voucher on it as one: the journal stores both or
    /// neither (a voucher that is used, expired, another member's or unknown refuses the sale
    /// too, and points the member lacks refuse the voucher's use). The use's id is the sale's
    /// with `-voucher` after it, so a resend meets both first answers.
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
        let purchase = Sending::new(id, command.purchase).prepare(grant, now)?;
        let voucher = Sending::new(voucher_id, UseVoucher { code, store }).prepare(grant, now)?;
        let answers = self.journal.submit_together(vec![purchase, voucher]).await;
        match <[_; 2]>::try_from(answers) {
            Ok([Ok(purchase), Ok(voucher)]) => Ok(PurchaseWithVoucherAnswer { purchase, voucher }),
            Ok([purchase, voucher]) => Err(refusal_of_pair(purchase, voucher)),
            Err(_) => Err(AppError::internal(
                "the journal answered another number of events",
            )),
        }
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

    /// How many members would change tier if `definition` were published now: counted, or
    /// still being counted in the background (a large tenant takes longer than a page may).
    pub async fn tier_impact(
        &self,
        grant: &Grant,
        definition: &ProgrammeDefinition,
    ) -> Result<ImpactCount, AppError> {
        grant.require(Permission::ManageProgramme)?;
        self.impacts
            .get(&self.store, grant.tenant_id, definition)
            .await
            .map_err(AppError::internal)
    }
}

/// The refusal of a sale and its voucher recorded together: the refused one's own (the
/// other answers that it went with it), named as the voucher's field when it was the use.
fn refusal_of_pair(
    purchase: Result<EventResult, EventError>,
    voucher: Result<EventResult, EventError>,
) -> AppError {
    match (purchase, voucher) {
        (Err(error), _) if error != EventError::RefusedWithItsGroup => AppError::from(error),
        (_, Err(error)) => {
            let mut error = AppError::from(error);
            if error.kind != ErrorKind::Internal && error.kind != ErrorKind::Unavailable {
                error.field = Some("voucher".into());
            }
            error
        }
        (Err(error), Ok(_)) => AppError::from(error),
        (Ok(_), Ok(_)) => AppError::internal("a pair answered as refused was not"),
    }
}
