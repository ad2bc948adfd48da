//! `/admin/staff`: the tenant's people, adding one, changing a role, disabling and enabling.

use super::{fault_for, local_time, role_key, FieldFault, STAFF_ROLES};
use crate::i18n::Texts;
use crate::page::{self, render_with};
use crate::staff::Staff;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use patron_server::auth::Permission;
use patron_server::AppState;
use patron_store::audit::Actor;
use patron_store::users::{Role, PASSWORD_LENGTH_MAX, PASSWORD_LENGTH_MIN};
use patron_store::StoreError;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/staff", get(list).post(add))
        .route("/admin/staff/{id}/role", post(change_role))
        .route("/admin/staff/{id}/access", post(change_access))
}

struct StaffRow {
    id: String,
    name: String,
    email: String,
    role: Role,
    role_key: &'static str,
    /// "Since …".
    since: String,
    disabled: bool,
    is_me: bool,
}

#[derive(Default, Deserialize)]
struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

#[derive(Template)]
#[template(path = "settings/staff.html")]
struct StaffPage {
    t: Texts,
    staff: Staff,
    notice: Option<&'static str>,
    /// A refusal that concerns a row rather than the add form.
    problem: Option<String>,
    people: Vec<StaffRow>,
    form: AddForm,
    fault: Option<FieldFault>,
}

impl StaffPage {
    fn fault_at(&self, field: &str) -> Option<&str> {
        fault_for(&self.fault, field)
    }

    fn roles(&self) -> &'static [(Role, &'static str)] {
        &STAFF_ROLES
    }
}

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

async fn page_for(state: &AppState, staff: Staff) -> Result<StaffPage, Response> {
    let users = state
        .store
        .users(staff.tenant_id)
        .await
        .map_err(|error| page::failed(staff.t, error))?;
    let people = users
        .into_iter()
        .map(|user| StaffRow {
            is_me: user.id == staff.user.id,
            since: staff.t.fill(
                "settings.staff.since",
                &[("at", &local_time(&staff, &user.created_at))],
            ),
            role_key: role_key(user.role),
            id: user.id,
            name: user.name,
            email: user.email,
            role: user.role,
            disabled: user.disabled,
        })
        .collect();
    Ok(StaffPage {
        t: staff.t,
        staff,
        notice: None,
        problem: None,
        people,
        form: AddForm {
            role: "cashier".into(),
            ..AddForm::default()
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
        Some("added") => Some("settings.staff.added"),
        Some("changed") => Some("settings.staff.changed"),
        _ => None,
    };
    render_with(StatusCode::OK, &page)
}

/// The add form's mistakes that can be seen without the database, in the visitor's words.
fn check_new(t: Texts, form: &AddForm) -> Result<Role, FieldFault> {
    let email = form.email.trim();
    if email.is_empty() || !email.contains('@') || email.len() > 200 {
        return Err(FieldFault::new("email", t.get("settings.staff.bad_email")));
    }
    if form.name.trim().is_empty() || form.name.len() > 200 {
        return Err(FieldFault::new("name", t.get("settings.staff.bad_name")));
    }
    let role = Role::parse_staff(&form.role)
        .ok_or_else(|| FieldFault::new("role", t.get("settings.staff.bad_role")))?;
    let length = form.password.chars().count();
    if !(PASSWORD_LENGTH_MIN..=PASSWORD_LENGTH_MAX).contains(&length) {
        return Err(FieldFault::new(
            "password",
            t.fill(
                "settings.staff.bad_password",
                &[
                    ("min", &PASSWORD_LENGTH_MIN.to_string()),
                    ("max", &PASSWORD_LENGTH_MAX.to_string()),
                ],
            ),
        ));
    }
    Ok(role)
}

async fn add(State(state): State<AppState>, staff: Staff, Form(form): Form<AddForm>) -> Response {
    if let Err(refused) = staff.require(Permission::Administer) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&form.csrf) {
        return refused;
    }
    let t = staff.t;
    let fault = match check_new(t, &form) {
        Err(fault) => fault,
        Ok(role) => {
            let actor = Actor::user(&staff.user.id);
            match state
                .store
                .create_user(
                    staff.tenant_id,
                    &form.email,
                    &form.name,
                    role,
                    &form.password,
                    &actor,
                )
                .await
            {
                Ok(_) => return Redirect::to("/admin/staff?done=added").into_response(),
                Err(StoreError::Conflict { .. }) => {
                    FieldFault::new("email", t.get("settings.staff.email_taken"))
                }
                Err(StoreError::Invalid { field, message }) => FieldFault::new(field, message),
                Err(error) => return page::failed(t, error),
            }
        }
    };
    let mut page = match page_for(&state, staff).await {
        Ok(page) => page,
        Err(failed) => return failed,
    };
    // The password is never sent back into the page.
    page.form = AddForm {
        password: String::new(),
        ..form
    };
    page.fault = Some(fault);
    render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

#[derive(Deserialize)]
struct RoleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
}

#[derive(Deserialize)]
struct AccessForm {
    #[serde(default)]
    csrf: String,
    /// `disable` or `enable`.
    #[serde(default)]
    access: String,
}

/// Changes someone else's role or access; nobody locks themselves out from here.
async fn update(
    state: &AppState,
    staff: Staff,
    id: &str,
    role: Option<Role>,
    disabled: Option<bool>,
) -> Response {
    let t = staff.t;
    let problem = if id == staff.user.id {
        Some(t.get("settings.staff.not_yourself").to_owned())
    } else {
        let actor = Actor::user(&staff.user.id);
        match state
            .store
            .update_user(staff.tenant_id, id, role, disabled, &actor)
            .await
        {
            Ok(_) => return Redirect::to("/admin/staff?done=changed").into_response(),
            Err(StoreError::NotFound { .. }) => return page::not_found(t),
            Err(StoreError::Invalid { message, .. }) => Some(message),
            Err(error) => return page::failed(t, error),
        }
    };
    let mut page = match page_for(state, staff).await {
        Ok(page) => page,
        Err(failed) => return failed,
    };
    page.problem = problem;
    render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

async fn change_role(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Response {
    if let Err(refused) = staff.require(Permission::Administer) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&form.csrf) {
        return refused;
    }
    let Some(role) = Role::parse_staff(&form.role) else {
        let t = staff.t;
        let mut page = match page_for(&state, staff).await {
            Ok(page) => page,
            Err(failed) => return failed,
        };
        page.problem = Some(t.get("settings.staff.bad_role").to_owned());
        return render_with(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    update(&state, staff, &id, Some(role), None).await
}

async fn change_access(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(form): Form<AccessForm>,
) -> Response {
    if let Err(refused) = staff.require(Permission::Administer) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&form.csrf) {
        return refused;
    }
    let disabled = form.access != "enable";
    update(&state, staff, &id, None, Some(disabled)).await
}
