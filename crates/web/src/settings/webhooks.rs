//! `/admin/webhooks`: subscriptions (a URL and the topics sent to it), each with its delivery
//! log, and replaying a delivery. A new subscription's signing secret is shown once.

use super::{fault_for, local_time, FieldFault};
use crate::i18n::Texts;
use crate::page::{self, render, render_with};
use crate::staff::Staff;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use patron_server::auth::Permission;
use patron_server::webhook_targets::{self, UrlRefusal};
use patron_server::AppState;
use patron_store::audit::Actor;
use patron_store::webhooks::TOPICS;
use patron_store::StoreError;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/webhooks", get(list).post(create))
        .route("/admin/webhooks/{id}", get(deliveries))
        .route("/admin/webhooks/{id}/disable", post(disable))
        .route("/admin/webhooks/deliveries/{id}/replay", post(replay))
}

/// Deliveries shown on a subscription's page.
const DELIVERIES_SHOWN: i64 = 100;

struct SubscriptionRow {
    id: String,
    url: String,
    topics: String,
    created_at: String,
    /// "Disabled …", once disabled.
    disabled: Option<String>,
}

#[derive(Template)]
#[template(path = "settings/webhooks.html")]
struct WebhooksPage {
    t: Texts,
    staff: Staff,
    notice: Option<&'static str>,
    subscriptions: Vec<SubscriptionRow>,
    url: String,
    chosen: Vec<String>,
    fault: Option<FieldFault>,
}

impl WebhooksPage {
    fn fault_at(&self, field: &str) -> Option<&str> {
        fault_for(&self.fault, field)
    }

    fn topics(&self) -> &'static [&'static str] {
        &TOPICS
    }

    fn is_chosen(&self, topic: &str) -> bool {
        self.chosen.iter().any(|chosen| chosen == topic)
    }
}

#[derive(Template)]
#[template(path = "settings/webhook_created.html")]
struct CreatedPage {
    t: Texts,
    staff: Staff,
    id: String,
    /// "Subscribed …".
    intro: String,
    secret: String,
}

struct DeliveryRow {
    id: String,
    topic: String,
    status: String,
    attempts: i64,
    last_status_code: Option<i64>,
    /// The message key of why the last attempt got no answer.
    last_error: Option<&'static str>,
    created_at: String,
    /// "Delivered …".
    delivered: Option<String>,
    /// "Next attempt …".
    next_attempt: String,
}

#[derive(Template)]
#[template(path = "settings/deliveries.html")]
struct DeliveriesPage {
    t: Texts,
    staff: Staff,
    notice: Option<&'static str>,
    subscription: SubscriptionRow,
    deliveries: Vec<DeliveryRow>,
}

impl DeliveriesPage {
    /// The message key of a delivery's status.
    fn status_key(&self, status: &str) -> &'static str {
        match status {
            "pending" => "settings.webhooks.status_pending",
            "delivered" => "settings.webhooks.status_delivered",
            "failed" => "settings.webhooks.status_failed",
            _ => "settings.webhooks.status_cancelled",
        }
    }
}

/// The message key of a delivery's failure reason (one of the store's `FAILURE_REASONS`).
fn reason_key(reason: &str) -> &'static str {
    match reason {
        "timeout" => "settings.webhooks.reason_timeout",
        "address not allowed" => "settings.webhooks.reason_address_not_allowed",
        _ => "settings.webhooks.reason_connection_failed",
    }
}

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

fn row_of(staff: &Staff, subscription: patron_store::webhooks::Subscription) -> SubscriptionRow {
    SubscriptionRow {
        created_at: local_time(staff, &subscription.created_at),
        disabled: subscription.disabled_at.as_deref().map(|at| {
            staff.t.fill(
                "settings.webhooks.disabled_at",
                &[("at", &local_time(staff, at))],
            )
        }),
        topics: subscription.topics.join(", "),
        id: subscription.id,
        url: subscription.url,
    }
}

async fn page_for(state: &AppState, staff: Staff) -> Result<WebhooksPage, Response> {
    let subscriptions = state
        .store
        .webhooks(staff.tenant_id)
        .await
        .map_err(|error| page::failed(staff.t, error))?;
    let subscriptions = subscriptions
        .into_iter()
        .rev()
        .map(|subscription| row_of(&staff, subscription))
        .collect();
    Ok(WebhooksPage {
        t: staff.t,
        staff,
        notice: None,
        subscriptions,
        url: String::new(),
        chosen: Vec::new(),
        fault: None,
    })
}

async fn list(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<Notice>,
) -> Response {
    if let Err(refused) = staff.require(Permission::Administer) {
        return refused;
    }
    let mut page = match page_for(&state, staff).await {
        Ok(page) => page,
        Err(failed) => return failed,
    };
    page.notice = match query.done.as_deref() {
        Some("disabled") => Some("settings.webhooks.disabled_notice"),
        _ => None,
    };
    render(&page)
}

async fn create(
    State(state): State<AppState>,
    staff: Staff,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(refused) = staff.require(Permission::Administer) {
        return refused;
    }
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    if let Err(refused) = staff.check_csrf(&field("csrf")) {
        return refused;
    }
    let t = staff.t;
    let url = field("url");
    let chosen: Vec<String> = pairs
        .iter()
        .filter(|(key, _)| key == "topics")
        .map(|(_, value)| value.clone())
        .collect();
    let fault = if chosen.is_empty() {
        FieldFault::new("topics", t.get("settings.webhooks.no_topics"))
    } else if let Err(refusal) =
        webhook_targets::check_url(&url, state.webhooks_allow_private_targets).await
    {
        let key = match refusal {
            UrlRefusal::Malformed => "settings.webhooks.bad_url",
            UrlRefusal::AddressNotAllowed => "settings.webhooks.url_not_allowed",
        };
        FieldFault::new("url", t.get(key))
    } else {
        let actor = Actor::user(&staff.user.id);
        match state
            .store
            .create_webhook(staff.tenant_id, &actor, &url, &chosen)
            .await
        {
            Ok((subscription, secret)) => {
                return render(&CreatedPage {
                    t,
                    staff,
                    id: subscription.id,
                    intro: t.fill(
                        "settings.webhooks.created_for",
                        &[("url", &subscription.url)],
                    ),
                    secret,
                })
            }
            Err(StoreError::Invalid { field, message }) if field == "url" => {
                let message = if message.starts_with("a tenant may have") {
                    message
                } else {
                    t.get("settings.webhooks.bad_url").to_owned()
                };
                FieldFault::new("url", message)
            }
            Err(StoreError::Invalid { .. }) => {
                FieldFault::new("topics", t.get("settings.webhooks.bad_topic"))
            }
            Err(error) => return page::failed(t, error),
        }
    };
    let mut page = match page_for(&state, staff).await {
        Ok(page) => page,
        Err(failed) => return failed,
    };
    page.url = url;
    page.chosen = chosen;
    page.fault = Some(fault);
    render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

async fn deliveries(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(query): Query<Notice>,
) -> Response {
    if let Err(refused) = staff.require(Permission::Administer) {
        return refused;
    }
    let t = staff.t;
    let subscription = match state.store.webhook(staff.tenant_id, &id).await {
        Ok(subscription) => subscription,
        Err(StoreError::NotFound { .. }) => return page::not_found(t),
        Err(error) => return page::failed(t, error),
    };
    let deliveries = match state
        .store
        .webhook_deliveries(staff.tenant_id, &id, DELIVERIES_SHOWN)
        .await
    {
        Ok(deliveries) => deliveries,
        Err(error) => return page::failed(t, error),
    };
    let deliveries = deliveries
        .into_iter()
        .map(|delivery| DeliveryRow {
            created_at: local_time(&staff, &delivery.created_at),
            delivered: delivery.delivered_at.as_deref().map(|at| {
                t.fill(
                    "settings.webhooks.delivered_at",
                    &[("at", &local_time(&staff, at))],
                )
            }),
            next_attempt: t.fill(
                "settings.webhooks.next_attempt",
                &[("at", &local_time(&staff, &delivery.next_attempt_at))],
            ),
            id: delivery.id,
            topic: delivery.topic,
            status: delivery.status,
            attempts: delivery.attempts,
            last_status_code: delivery.last_status_code,
            last_error: delivery.last_error.as_deref().map(reason_key),
        })
        .collect();
    render(&DeliveriesPage {
        t,
        notice: match query.done.as_deref() {
            Some("replayed") => Some("settings.webhooks.replayed_notice"),
            _ => None,
        },
        subscription: row_of(&staff, subscription),
        deliveries,
        staff,
    })
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn disable(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = staff.require(Permission::Administer) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&form.csrf) {
        return refused;
    }
    let actor = Actor::user(&staff.user.id);
    match state
        .store
        .disable_webhook(staff.tenant_id, &actor, &id)
        .await
    {
        Ok(_) => Redirect::to("/admin/webhooks?done=disabled").into_response(),
        Err(StoreError::NotFound { .. }) => page::not_found(staff.t),
        Err(error) => page::failed(staff.t, error),
    }
}

async fn replay(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = staff.require(Permission::Administer) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&form.csrf) {
        return refused;
    }
    let actor = Actor::user(&staff.user.id);
    match state
        .store
        .replay_delivery(staff.tenant_id, &actor, &id)
        .await
    {
        Ok(delivery) => Redirect::to(&format!(
            "/admin/webhooks/{}?done=replayed",
            delivery.subscription_id
        ))
        .into_response(),
        Err(StoreError::NotFound { .. }) => page::not_found(staff.t),
        Err(StoreError::Invalid { .. }) => page::message(
            StatusCode::UNPROCESSABLE_ENTITY,
            staff.t,
            "settings.webhooks.replay_refused_title",
            "settings.webhooks.replay_refused",
        ),
        Err(error) => page::failed(staff.t, error),
    }
}
