//! `/admin/keys`: API keys. A new key's secret is shown once, on the page that answers its
//! creation, and never again (only its hash is kept); revoking takes effect at once.

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
use patron_server::AppState;
use patron_store::admin::KeyScope;
use patron_store::audit::Actor;
use patron_store::StoreError;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/keys", get(list).post(create))
        .route("/admin/keys/{id}/revoke", post(revoke))
}

/// The scopes a key may have, with their message keys.
const SCOPES: [(&str, &str); 3] = [
    ("read", "settings.keys.scope_read"),
    ("write", "settings.keys.scope_write"),
    ("admin", "settings.keys.scope_admin"),
];

struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    scope_key: &'static str,
    store: String,
    created_at: String,
    last_used_at: Option<String>,
    /// "Revoked …", once revoked.
    revoked: Option<String>,
    revoke_confirm: String,
}

#[derive(Default, Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    store: String,
}

#[derive(Template)]
#[template(path = "settings/keys.html")]
struct KeysPage {
    t: Texts,
    staff: Staff,
    notice: Option<&'static str>,
    keys: Vec<KeyRow>,
    stores: Vec<String>,
    form: CreateForm,
    fault: Option<FieldFault>,
}

impl KeysPage {
    fn fault_at(&self, field: &str) -> Option<&str> {
        fault_for(&self.fault, field)
    }

    fn scopes(&self) -> &'static [(&'static str, &'static str)] {
        &SCOPES
    }
}

#[derive(Template)]
#[template(path = "settings/key_created.html")]
struct CreatedPage {
    t: Texts,
    staff: Staff,
    /// "The key … was made".
    intro: String,
    secret: String,
}

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

async fn page_for(state: &AppState, staff: Staff) -> Result<KeysPage, Response> {
    let keys = state
        .store
        .api_keys(staff.tenant_id)
        .await
        .map_err(|error| page::failed(staff.t, error))?;
    let keys = keys
        .into_iter()
        .map(|key| KeyRow {
            scope_key: SCOPES
                .iter()
                .find(|(scope, _)| *scope == key.scope)
                .map(|(_, message)| *message)
                .unwrap_or("settings.keys.scope_admin"),
            created_at: local_time(&staff, &key.created_at),
            last_used_at: key.last_used_at.as_deref().map(|at| local_time(&staff, at)),
            revoked: key.revoked_at.as_deref().map(|at| {
                staff.t.fill(
                    "settings.keys.revoked_at",
                    &[("at", &local_time(&staff, at))],
                )
            }),
            revoke_confirm: staff
                .t
                .fill("settings.keys.revoke_confirm", &[("name", &key.name)]),
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            store: key.store.unwrap_or_default(),
        })
        .collect();
    Ok(KeysPage {
        t: staff.t,
        stores: staff.tenant.stores.clone(),
        staff,
        notice: None,
        keys,
        form: CreateForm {
            scope: "write".into(),
            ..CreateForm::default()
        },
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
        Some("revoked") => Some("settings.keys.revoked_notice"),
        _ => None,
    };
    render(&page)
}

async fn create(
    State(state): State<AppState>,
    staff: Staff,
    Form(form): Form<CreateForm>,
) -> Response {
    if let Err(refused) = staff.require(Permission::Administer) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&form.csrf) {
        return refused;
    }
    let t = staff.t;
    let fault = if form.name.trim().is_empty() || form.name.len() > 200 {
        FieldFault::new("name", t.get("settings.keys.bad_name"))
    } else if let Some(scope) = KeyScope::parse(&form.scope) {
        let store = Some(form.store.trim()).filter(|code| !code.is_empty());
        let actor = Actor::user(&staff.user.id);
        match state
            .store
            .create_key(staff.tenant_id, &form.name, scope, store, &actor)
            .await
        {
            Ok(created) => {
                return render(&CreatedPage {
                    t,
                    staff,
                    intro: t.fill("settings.keys.created_for", &[("name", &created.key.name)]),
                    secret: created.secret,
                })
            }
            Err(StoreError::Invalid { field, .. }) if field == "store" => {
                FieldFault::new("store", t.get("settings.keys.bad_store"))
            }
            Err(StoreError::Invalid { field, message }) => FieldFault::new(field, message),
            Err(error) => return page::failed(t, error),
        }
    } else {
        FieldFault::new("scope", t.get("settings.keys.bad_scope"))
    };
    let mut page = match page_for(&state, staff).await {
        Ok(page) => page,
        Err(failed) => return failed,
    };
    page.form = form;
    page.fault = Some(fault);
    render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(default)]
    csrf: String,
}

async fn revoke(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
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
        .revoke_api_key(staff.tenant_id, &id, &actor)
        .await
    {
        Ok(()) => {
            // As the API does: this node stops honouring the key at once.
            state.keys.forget(&id);
            Redirect::to("/admin/keys?done=revoked").into_response()
        }
        Err(StoreError::NotFound { .. }) => page::not_found(staff.t),
        Err(error) => page::failed(staff.t, error),
    }
}
