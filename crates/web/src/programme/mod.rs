//! The programme editor (`/admin/programme`): the version in force and the draft as a form
//! (rates, expiry, earning rules, tiers), the rewards catalogue, a preview of a sample purchase
//! under the draft with the reasons and how many members the draft's tiers would move, and
//! publishing the draft as a new version. Owners, managers and marketers; others get a 403.

mod form;

use crate::i18n::Texts;
use crate::page::{self, render, render_with};
use crate::settings::{actor_label, local_time};
use crate::staff::Staff;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::TimeZone;
use form::{parse_whole, DefinitionForm, Fault};
use patron_app::ImpactCount;
use patron_core::programme::{Programme, ProgrammeDefinition, BASE_RULE_ID};
use patron_core::reward::Reward;
use patron_core::{MemberId, Phone, Points, RewardId};
use patron_server::auth::Permission;
use patron_server::{AppState, DryRun};
use patron_store::audit::Actor;
use patron_store::programmes::TierImpact;
use patron_store::StoreError;
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/programme", get(editor))
        .route("/admin/programme/draft", post(save_draft))
        .route("/admin/programme/preview", get(preview))
        .route("/admin/programme/publish", post(publish))
        .route("/admin/programme/rewards", post(add_reward))
        .route("/admin/programme/rewards/{id}/retire", post(retire_reward))
        .route(
            "/admin/programme/rewards/{id}",
            get(reward_editor).post(save_reward),
        )
}

/// Sample items a preview may list.
const PREVIEW_ITEMS: usize = 3;

/// A published version as listed.
struct VersionRow {
    version: i64,
    effective_from: String,
    current: bool,
}

struct RewardRow {
    id: String,
    name: String,
    cost: String,
    stock: String,
    per_member_limit: String,
    active: bool,
}

/// The add-a-reward form as typed.
#[derive(Clone, Default, serde::Deserialize)]
struct RewardForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    cost: String,
    #[serde(default)]
    stock: String,
    #[serde(default)]
    per_member_limit: String,
    #[serde(default)]
    voucher_valid_days: String,
}

#[derive(Clone, Default)]
struct ItemRow {
    category: String,
    quantity: String,
    amount: String,
}

/// The sample purchase as typed.
#[derive(Clone, Default)]
struct PreviewForm {
    amount: String,
    store: String,
    phone: String,
    tier: String,
    items: Vec<ItemRow>,
}

/// One reason in a preview: which rule, at which rate, how many points.
struct PreviewLine {
    label: String,
    detail: String,
    points: String,
}

struct PreviewResult {
    /// `programme.preview.under_draft` or `…under_current`.
    under_key: &'static str,
    headline: String,
    lines: Vec<PreviewLine>,
    tier_line: Option<String>,
    member_line: String,
    impact_line: String,
    /// The tier impact is still being counted: the page reloads itself until it is done.
    counting: bool,
}

#[derive(Template)]
#[template(path = "programme/editor.html")]
struct EditorPage {
    t: Texts,
    staff: Staff,
    notice: Option<String>,
    /// "Version 3 in force since …".
    in_force: Option<String>,
    versions: Vec<VersionRow>,
    /// "Draft saved … by …", when there is a draft.
    draft: Option<String>,
    form: DefinitionForm,
    fault: Option<Fault>,
    may_catalogue: bool,
    rewards: Vec<RewardRow>,
    reward_form: RewardForm,
    reward_fault: Option<Fault>,
    stores: Vec<String>,
    tiers: Vec<(String, String)>,
    preview_form: PreviewForm,
    preview_fault: Option<Fault>,
    preview: Option<PreviewResult>,
    publish_at: String,
    publish_fault: Option<Fault>,
}

impl EditorPage {
    fn fault_in<'a>(fault: &'a Option<Fault>, field: &str) -> Option<&'a Fault> {
        fault.as_ref().filter(|fault| fault.field == field)
    }

    /// The message for a field of the programme form, if it is the one at fault.
    fn fault_at(&self, field: &str) -> Option<String> {
        Self::fault_in(&self.fault, field).map(|fault| fault.message(&self.t))
    }

    /// As `fault_at`, for a field of row `index` of `list` (`rules`, `tiers`). Templates hand
    /// the loop index by reference.
    fn row_fault(&self, list: &str, index: &usize, part: &str) -> Option<String> {
        self.fault_at(&format!("{list}[{index}].{part}"))
    }

    fn reward_fault_at(&self, field: &str) -> Option<String> {
        Self::fault_in(&self.reward_fault, field).map(|fault| fault.message(&self.t))
    }

    fn preview_fault_at(&self, field: &str) -> Option<String> {
        Self::fault_in(&self.preview_fault, field).map(|fault| fault.message(&self.t))
    }

    fn publish_fault_message(&self) -> Option<String> {
        self.publish_fault
            .as_ref()
            .map(|fault| fault.message(&self.t))
    }

    /// Every fault of the page, for the summary at its top: the id of the field to go to and
    /// the message. The editor is long; a fault next to its field may be far below the fold.
    fn fault_summary(&self) -> Vec<(String, String)> {
        let field_id = |field: &str| {
            field
                .replace("].", "-")
                .replace(['[', '.'], "-")
                .replace(']', "")
        };
        let mut summary = Vec::new();
        if let Some(fault) = &self.fault {
            let anchor = if self.general_fault().is_some() {
                "draft-error".to_owned()
            } else {
                field_id(&fault.field)
            };
            summary.push((anchor, fault.message(&self.t)));
        }
        if let Some(fault) = &self.reward_fault {
            summary.push((
                format!("reward-{}", field_id(&fault.field)),
                fault.message(&self.t),
            ));
        }
        if let Some(fault) = &self.preview_fault {
            summary.push(("preview".to_owned(), fault.message(&self.t)));
        }
        if let Some(fault) = &self.publish_fault {
            summary.push(("publish".to_owned(), fault.message(&self.t)));
        }
        summary
    }

    /// A fault of the programme form that no field shows (a whole list, e.g. too many rules).
    fn general_fault(&self) -> Option<String> {
        let fault = self.fault.as_ref()?;
        let shown = fault.field.contains('.')
            || [
                "amount_per_point",
                "point_value",
                "return_window_days",
                "cap_per_event",
                "cap_per_day",
            ]
            .contains(&fault.field.as_str());
        (!shown).then(|| fault.message(&self.t))
    }

    /// Whether a field of sample item `index` is at fault.
    fn item_fault(&self, index: &usize, part: &str) -> bool {
        self.preview_fault_at(&format!("items[{index}].{part}"))
            .is_some()
    }

    /// The message of a fault in the sample items.
    fn items_fault(&self) -> Option<String> {
        self.preview_fault
            .as_ref()
            .filter(|fault| fault.field.starts_with("items["))
            .map(|fault| fault.message(&self.t))
    }

    /// The row index a new rule or tier gets (one blank row after the others).
    fn next_rule(&self) -> usize {
        self.form.rules.len()
    }

    fn next_tier(&self) -> usize {
        self.form.tiers.len()
    }
}

/// Everything the editor shows, before a handler adds its own part.
async fn load(state: &AppState, staff: Staff) -> Result<EditorPage, Response> {
    let t = staff.t;
    let tenant_id = staff.tenant_id;
    let store = &state.store;
    let versions = store
        .programme_versions(tenant_id)
        .await
        .map_err(|error| page::failed(t, error))?;
    let draft = store
        .draft(tenant_id)
        .await
        .map_err(|error| page::failed(t, error))?;
    let users = store
        .users(tenant_id)
        .await
        .map_err(|error| page::failed(t, error))?;
    let rewards = store
        .rewards(tenant_id, None)
        .await
        .map_err(|error| page::failed(t, error))?;
    let current_definition = versions
        .iter()
        .find(|version| version.current)
        .map(|version| version.definition.clone());
    let editing = draft
        .as_ref()
        .map(|draft| draft.definition.clone())
        .or(current_definition)
        .unwrap_or_else(starting_definition);
    let rows: Vec<VersionRow> = versions
        .iter()
        .rev()
        .map(|version| VersionRow {
            version: version.version,
            effective_from: local_time(&staff, &version.effective_from),
            current: version.current,
        })
        .collect();
    let in_force = rows.iter().find(|row| row.current).map(|row| {
        t.fill(
            "programme.in_force",
            &[
                ("version", &row.version.to_string()),
                ("since", &row.effective_from),
            ],
        )
    });
    let draft = draft.map(|draft| {
        t.fill(
            "programme.draft_saved",
            &[
                ("at", &local_time(&staff, &draft.updated_at)),
                ("by", &actor_label(t, &users, &[], &draft.updated_by)),
            ],
        )
    });
    let rewards = rewards
        .iter()
        .map(|reward| RewardRow {
            id: reward.id.clone(),
            name: reward.name.clone(),
            cost: staff.points(reward.cost),
            stock: reward
                .stock
                .map(|stock| staff.points(stock))
                .unwrap_or_else(|| t.get("programme.rewards.unlimited").to_owned()),
            per_member_limit: reward
                .per_member_limit
                .map(|limit| limit.to_string())
                .unwrap_or_else(|| t.get("programme.rewards.unlimited").to_owned()),
            active: reward.active,
        })
        .collect();
    let tiers = editing
        .tiers
        .iter()
        .map(|tier| (tier.code.clone(), tier.name.clone()))
        .collect();
    Ok(EditorPage {
        t,
        notice: None,
        in_force,
        versions: rows,
        draft,
        form: DefinitionForm::from_definition(&editing),
        fault: None,
        may_catalogue: staff.may(Permission::ManageCatalogue),
        rewards,
        reward_form: RewardForm {
            voucher_valid_days: "30".into(),
            ..RewardForm::default()
        },
        reward_fault: None,
        stores: staff.tenant.stores.clone(),
        tiers,
        preview_form: PreviewForm {
            items: vec![ItemRow::default(); PREVIEW_ITEMS],
            ..PreviewForm::default()
        },
        preview_fault: None,
        preview: None,
        publish_at: String::new(),
        publish_fault: None,
        staff,
    })
}

/// What a tenant without any programme starts from: 1 point per 10,000, no tiers.
fn starting_definition() -> ProgrammeDefinition {
    ProgrammeDefinition {
        amount_per_point: 10_000,
        point_value: 1_000,
        return_window_days: 0,
        expiry: Default::default(),
        cap_per_event: None,
        cap_per_day: None,
        rules: Vec::new(),
        tiers: Vec::new(),
        qualification: Default::default(),
    }
}

#[derive(serde::Deserialize)]
struct EditorQuery {
    saved: Option<String>,
    published: Option<i64>,
    reward: Option<String>,
    retired: Option<bool>,
    saved_reward: Option<String>,
}

async fn editor(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<EditorQuery>,
) -> Response {
    if let Err(refused) = staff.require(Permission::ManageProgramme) {
        return refused;
    }
    let mut page = match load(&state, staff).await {
        Ok(page) => page,
        Err(failed) => return failed,
    };
    let t = page.t;
    page.notice = if let Some(version) = query.published {
        Some(t.fill(
            "programme.notice.published",
            &[("version", &version.to_string())],
        ))
    } else if query.saved.is_some() {
        Some(t.get("programme.notice.saved").to_owned())
    } else if query.reward.is_some() {
        Some(t.get("programme.notice.reward_added").to_owned())
    } else if query.saved_reward.is_some() {
        Some(t.get("programme.notice.reward_saved").to_owned())
    } else {
        query.retired.map(|retired| {
            let key = if retired {
                "programme.notice.reward_retired"
            } else {
                "programme.notice.reward_offered"
            };
            t.get(key).to_owned()
        })
    };
    render(&page)
}

/// The form's own `csrf` field among the pairs.
fn csrf_of(pairs: &[(String, String)]) -> &str {
    pairs
        .iter()
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.as_str())
        .unwrap_or("")
}

async fn save_draft(
    State(state): State<AppState>,
    staff: Staff,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(refused) = staff.require(Permission::ManageProgramme) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(csrf_of(&pairs)) {
        return refused;
    }
    let typed = DefinitionForm::from_pairs(&pairs);
    let fault = match typed.to_definition() {
        Err(fault) => fault,
        Ok(definition) => {
            let actor = Actor::user(&staff.user.id);
            match state
                .store
                .save_draft(staff.tenant_id, &definition, &actor)
                .await
            {
                Ok(_) => return Redirect::to("/admin/programme?saved=1").into_response(),
                Err(StoreError::Invalid { field, message }) => {
                    let field = field.strip_prefix("definition.").unwrap_or(&field);
                    Fault::from_validation(field, &message)
                }
                Err(error) => return page::failed(staff.t, error),
            }
        }
    };
    let mut page = match load(&state, staff).await {
        Ok(page) => page,
        Err(failed) => return failed,
    };
    page.form = typed;
    page.fault = Some(fault);
    render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

/// Reads the sample purchase: `amount`, `store`, `phone`, `tier`, `items[0].category` ….
fn preview_form(pairs: &[(String, String)]) -> PreviewForm {
    let mut form = PreviewForm {
        items: vec![ItemRow::default(); PREVIEW_ITEMS],
        ..PreviewForm::default()
    };
    for (name, value) in pairs {
        let value = value.clone();
        match name.as_str() {
            "amount" => form.amount = value,
            "store" => form.store = value,
            "phone" => form.phone = value,
            "tier" => form.tier = value,
            _ => {
                let Some(rest) = name.strip_prefix("items[") else {
                    continue;
                };
                let Some((index, part)) = rest.split_once("].") else {
                    continue;
                };
                let Some(item) = index
                    .parse::<usize>()
                    .ok()
                    .and_then(|index| form.items.get_mut(index))
                else {
                    continue;
                };
                match part {
                    "category" => item.category = value,
                    "quantity" => item.quantity = value,
                    "amount" => item.amount = value,
                    _ => {}
                }
            }
        }
    }
    form
}

/// The purchase as the API's dry run takes it, or the field at fault.
fn purchase_json(form: &PreviewForm) -> Result<serde_json::Value, Fault> {
    let amount = parse_whole(&form.amount).ok_or_else(|| {
        let key = if form.amount.trim().is_empty() {
            "programme.error.required"
        } else {
            "programme.error.number"
        };
        Fault::new("amount", key)
    })?;
    if amount <= 0 {
        return Err(Fault::new("amount", "programme.error.positive"));
    }
    let member = if form.phone.trim().is_empty() {
        // Nobody has a fresh id: the purchase is judged as a new member's.
        serde_json::json!({"id": MemberId::new().to_string()})
    } else {
        let phone =
            Phone::parse(&form.phone).map_err(|_| Fault::new("phone", "programme.error.phone"))?;
        serde_json::json!({"phone": phone.as_str()})
    };
    let mut items = Vec::new();
    for (index, item) in form.items.iter().enumerate() {
        if item.category.trim().is_empty() {
            continue;
        }
        let quantity = if item.quantity.trim().is_empty() {
            1
        } else {
            parse_whole(&item.quantity)
                .filter(|quantity| *quantity > 0)
                .ok_or_else(|| {
                    Fault::new(
                        format!("items[{index}].quantity"),
                        "programme.error.positive",
                    )
                })?
        };
        let item_amount = if item.amount.trim().is_empty() {
            0
        } else {
            parse_whole(&item.amount)
                .filter(|amount| *amount >= 0)
                .ok_or_else(|| {
                    Fault::new(
                        format!("items[{index}].amount"),
                        "programme.error.zero_or_more",
                    )
                })?
        };
        items.push(serde_json::json!({
            "category": item.category.trim(),
            "quantity": quantity,
            "amount": item_amount,
        }));
    }
    let mut purchase = serde_json::json!({"member": member, "amount": amount, "items": items});
    if !form.store.trim().is_empty() {
        purchase["store"] = form.store.trim().into();
    }
    Ok(purchase)
}

/// "Giao dịch này được 32 điểm vì …": the dry run's lines in the visitor's words.
fn explain(
    staff: &Staff,
    definition: &ProgrammeDefinition,
    amount: i64,
    outcome: &DryRun,
) -> (String, Vec<PreviewLine>) {
    let t = staff.t;
    let headline = if outcome.points_earned == 0 {
        t.get("programme.preview.no_points").to_owned()
    } else {
        t.fill(
            "programme.preview.headline",
            &[("points", &staff.points(outcome.points_earned))],
        )
    };
    let lines = outcome
        .lines
        .iter()
        .map(|line| {
            // The engine writes its own details in plain English; the rate and the multiplier
            // are said again here in the visitor's language.
            let multiplier = line
                .detail
                .split_once(" × ")
                .map(|(_, multiplier)| format!(" × {multiplier}"))
                .unwrap_or_default();
            let (label, detail) = match line.rule.as_str() {
                BASE_RULE_ID => (
                    t.get("programme.preview.base_rate").to_owned(),
                    format!(
                        "{}{multiplier}",
                        t.fill(
                            "programme.preview.base_detail",
                            &[
                                ("per", &staff.money(definition.amount_per_point)),
                                ("amount", &staff.money(amount)),
                            ],
                        )
                    ),
                ),
                "cap_per_event" | "cap_per_day" => (
                    crate::reasons::line_name(t, &line.rule, &line.name),
                    line.detail.clone(),
                ),
                _ => (
                    t.fill(
                        "programme.preview.rule",
                        &[("name", &line.name), ("id", &line.rule)],
                    ),
                    line.detail.clone(),
                ),
            };
            PreviewLine {
                label,
                detail,
                points: staff.points(line.points),
            }
        })
        .collect();
    (headline, lines)
}

fn impact_line(t: Texts, impact: &TierImpact) -> String {
    t.fill(
        "programme.preview.impact",
        &[
            ("changed", &impact.changed.to_string()),
            ("members", &impact.members.to_string()),
            ("up", &impact.up.to_string()),
            ("down", &impact.down.to_string()),
        ],
    )
}

/// The sample judged under the draft (else the version in force): which one, the programme
/// and the dry run's answer; or the field at fault. `Err` is a page to show as is.
async fn judge_sample(
    state: &AppState,
    staff: &Staff,
    typed: &PreviewForm,
) -> Result<Result<(&'static str, Arc<Programme>, DryRun), Fault>, Response> {
    let draft = state
        .store
        .draft(staff.tenant_id)
        .await
        .map_err(|error| page::failed(staff.t, error))?;
    let (which, under_key, programme) = match draft {
        Some(draft) => (
            "draft",
            "programme.preview.under_draft",
            patron_store::programmes::validate(&draft.definition)
                .ok()
                .map(Arc::new),
        ),
        None => (
            "current",
            "programme.preview.under_current",
            staff.tenant.programme_at(chrono::Utc::now()).cloned(),
        ),
    };
    let purchase = match purchase_json(typed) {
        Ok(purchase) => purchase,
        Err(fault) => return Ok(Err(fault)),
    };
    let Some(programme) = programme else {
        return Ok(Err(Fault::new("amount", "programme.preview.no_programme")));
    };
    let tier = Some(typed.tier.as_str()).filter(|tier| programme.tier(tier).is_some());
    let judged = patron_server::dry_run_purchase(
        state,
        staff.tenant_id,
        Arc::clone(&programme),
        which,
        purchase,
        tier,
    )
    .await;
    match judged {
        Ok(outcome) => Ok(Ok((under_key, programme, outcome))),
        Err(error) => {
            let field = error.body.field.clone().unwrap_or_default();
            let field = match field.trim_start_matches("purchase.") {
                "member.phone" => "phone".to_owned(),
                "" => "amount".to_owned(),
                other => other.to_owned(),
            };
            Ok(Err(Fault::new(field, "programme.error.invalid")
                .with("detail", error.body.message.clone())))
        }
    }
}

/// The preview's answer in words: points and reasons, the member judged, the tier change, and
/// how many members the programme's tiers would move.
fn describe(
    staff: &Staff,
    under_key: &'static str,
    programme: &Programme,
    amount: i64,
    outcome: &DryRun,
    impact: &ImpactCount,
) -> PreviewResult {
    let t = staff.t;
    let (headline, lines) = explain(staff, &programme.definition, amount, outcome);
    let tier_name = |code: &str| {
        programme
            .tier(code)
            .map(|(_, tier)| tier.name.clone())
            .unwrap_or_else(|| code.to_owned())
    };
    PreviewResult {
        under_key,
        headline,
        lines,
        tier_line: outcome.tier_change.as_ref().map(|change| {
            t.fill(
                "programme.preview.tier_change",
                &[
                    ("from", &tier_name(&change.from)),
                    ("to", &tier_name(&change.to)),
                ],
            )
        }),
        member_line: t.fill(
            if outcome.known_member {
                "programme.preview.known_member"
            } else {
                "programme.preview.new_member"
            },
            &[("tier", &tier_name(&outcome.tier_before))],
        ),
        impact_line: match impact {
            ImpactCount::Counted(impact) => impact_line(t, impact),
            ImpactCount::Counting { settled } => t.fill(
                "programme.preview.counting",
                &[("settled", &settled.to_string())],
            ),
        },
        counting: matches!(impact, ImpactCount::Counting { .. }),
    }
}

async fn preview(
    State(state): State<AppState>,
    staff: Staff,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(refused) = staff.require(Permission::ManageProgramme) {
        return refused;
    }
    let typed = preview_form(&pairs);
    let judged = match judge_sample(&state, &staff, &typed).await {
        Ok(judged) => judged,
        Err(failed) => return failed,
    };
    let (result, fault) = match judged {
        Err(fault) => (None, Some(fault)),
        Ok((under_key, programme, outcome)) => {
            let impact = match state
                .app
                .tier_impact(&staff.grant(), &programme.definition)
                .await
            {
                Ok(impact) => impact,
                Err(error) => return page::failed(staff.t, error),
            };
            let amount = parse_whole(&typed.amount).unwrap_or(0);
            let described = describe(&staff, under_key, &programme, amount, &outcome, &impact);
            (Some(described), None)
        }
    };
    let mut page = match load(&state, staff).await {
        Ok(page) => page,
        Err(failed) => return failed,
    };
    let status = if fault.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page.preview_form = typed;
    page.preview = result;
    page.preview_fault = fault;
    render_with(status, &page)
}

#[derive(serde::Deserialize)]
struct PublishForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    effective_from: String,
}

async fn publish(
    State(state): State<AppState>,
    staff: Staff,
    Form(form): Form<PublishForm>,
) -> Response {
    if let Err(refused) = staff.require(Permission::ManageProgramme) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&form.csrf) {
        return refused;
    }
    let t = staff.t;
    let tenant_id = staff.tenant_id;
    let effective_from = match parse_local(&form.effective_from, staff.tenant.zone) {
        Ok(at) => at.unwrap_or_else(chrono::Utc::now),
        Err(fault) => return publish_refused(&state, staff, form.effective_from, fault).await,
    };
    let draft = match state.store.draft(tenant_id).await {
        Ok(Some(draft)) => draft,
        Ok(None) => {
            let fault = Fault::new("effective_from", "programme.error.no_draft");
            return publish_refused(&state, staff, form.effective_from, fault).await;
        }
        Err(error) => return page::failed(t, error),
    };
    let actor = Actor::user(&staff.user.id);
    match state
        .store
        .publish_version(tenant_id, draft.definition, effective_from, &actor, true)
        .await
    {
        Ok(version) => {
            Redirect::to(&format!("/admin/programme?published={version}")).into_response()
        }
        Err(StoreError::Invalid { field, message }) => {
            let field = field.strip_prefix("definition.").unwrap_or(&field);
            let fault = Fault::from_validation(field, &message);
            publish_refused(&state, staff, form.effective_from, fault).await
        }
        Err(error) => page::failed(t, error),
    }
}

async fn publish_refused(state: &AppState, staff: Staff, typed: String, fault: Fault) -> Response {
    let mut page = match load(state, staff).await {
        Ok(page) => page,
        Err(failed) => return failed,
    };
    page.publish_at = typed;
    page.publish_fault = Some(fault);
    render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

/// A `datetime-local` value (`2026-11-23T09:30`) in the tenant's zone; empty is none.
fn parse_local(
    text: &str,
    zone: chrono_tz::Tz,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Fault> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let fault = || Fault::new("effective_from", "programme.error.date");
    let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| fault())?;
    zone.from_local_datetime(&local)
        .earliest()
        .map(|at| Some(at.with_timezone(&chrono::Utc)))
        .ok_or_else(fault)
}

/// The reward the form describes, or the field at fault.
fn reward_of(form: &RewardForm) -> Result<Reward, Fault> {
    let required = |text: &str, field: &str| -> Result<i64, Fault> {
        if text.trim().is_empty() {
            return Err(Fault::new(field, "programme.error.required"));
        }
        parse_whole(text).ok_or_else(|| Fault::new(field, "programme.error.number"))
    };
    let optional = |text: &str, field: &str| -> Result<Option<i64>, Fault> {
        if text.trim().is_empty() {
            Ok(None)
        } else {
            required(text, field).map(Some)
        }
    };
    if form.name.trim().is_empty() {
        return Err(Fault::new("name", "programme.error.required"));
    }
    let valid_days = if form.voucher_valid_days.trim().is_empty() {
        30
    } else {
        required(&form.voucher_valid_days, "voucher_valid_days")?
    };
    Ok(Reward {
        id: RewardId::new(),
        name: form.name.trim().to_owned(),
        description: form.description.trim().to_owned(),
        cost: Points(required(&form.cost, "cost")?),
        stock: optional(&form.stock, "stock")?,
        per_member_limit: optional(&form.per_member_limit, "per_member_limit")?,
        valid_from: None,
        valid_until: None,
        stores: Vec::new(),
        voucher_valid_days: u32::try_from(valid_days)
            .map_err(|_| Fault::new("voucher_valid_days", "programme.error.zero_or_more"))?,
        active: true,
    })
}

async fn add_reward(
    State(state): State<AppState>,
    staff: Staff,
    Form(form): Form<RewardForm>,
) -> Response {
    if let Err(refused) = staff.require(Permission::ManageCatalogue) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&form.csrf) {
        return refused;
    }
    let fault = match reward_of(&form) {
        Err(fault) => fault,
        Ok(reward) => match state
            .store
            .create_reward_as(staff.tenant_id, &reward, &Actor::user(&staff.user.id))
            .await
        {
            Ok(_) => return Redirect::to("/admin/programme?reward=1").into_response(),
            Err(StoreError::Invalid { field, message }) => Fault::from_validation(&field, &message),
            Err(error) => return page::failed(staff.t, error),
        },
    };
    let mut page = match load(&state, staff).await {
        Ok(page) => page,
        Err(failed) => return failed,
    };
    page.reward_form = form;
    page.reward_fault = Some(fault);
    render_with(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

#[derive(serde::Deserialize)]
struct RetireForm {
    #[serde(default)]
    csrf: String,
    /// `true` retires the reward, `false` offers it again.
    retired: bool,
}

/// Retires a reward (no new redemptions; issued vouchers stay usable) or offers it again.
async fn retire_reward(
    State(state): State<AppState>,
    staff: Staff,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<RetireForm>,
) -> Response {
    if let Err(refused) = staff.require(Permission::ManageCatalogue) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&form.csrf) {
        return refused;
    }
    let Ok(reward_id) = RewardId::parse(&id) else {
        return page::failed(staff.t, StoreError::NotFound { what: "reward" });
    };
    let change = patron_store::admin::RewardChange {
        active: Some(!form.retired),
        ..Default::default()
    };
    match state
        .store
        .update_reward(
            staff.tenant_id,
            reward_id,
            &change,
            &Actor::user(&staff.user.id),
        )
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/admin/programme?retired={}#rewards",
            form.retired
        ))
        .into_response(),
        Err(error) => page::failed(staff.t, error),
    }
}

/// `/admin/programme/rewards/{id}`: one reward's form.
#[derive(Template)]
#[template(path = "programme/reward.html")]
struct RewardPage {
    t: Texts,
    staff: Staff,
    id: String,
    form: RewardForm,
    fault: Option<Fault>,
}

impl RewardPage {
    fn fault_at(&self, field: &str) -> Option<String> {
        self.fault
            .as_ref()
            .filter(|fault| fault.field == field)
            .map(|fault| fault.message(&self.t))
    }
}

async fn reward_editor(
    State(state): State<AppState>,
    staff: Staff,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if let Err(refused) = staff.require(Permission::ManageCatalogue) {
        return refused;
    }
    let Ok(reward_id) = RewardId::parse(&id) else {
        return page::not_found(staff.t);
    };
    let reward = match state.store.reward(staff.tenant_id, reward_id).await {
        Ok(reward) => reward,
        Err(StoreError::NotFound { .. }) => return page::not_found(staff.t),
        Err(error) => return page::failed(staff.t, error),
    };
    let number = |value: Option<i64>| value.map(|value| value.to_string()).unwrap_or_default();
    let form = RewardForm {
        csrf: String::new(),
        name: reward.name,
        description: reward.description,
        cost: reward.cost.0.to_string(),
        stock: number(reward.stock),
        per_member_limit: number(reward.per_member_limit),
        voucher_valid_days: reward.voucher_valid_days.to_string(),
    };
    render(&RewardPage {
        t: staff.t,
        staff,
        id,
        form,
        fault: None,
    })
}

/// Saves a reward's name, description, cost, stock, limit and voucher days.
async fn save_reward(
    State(state): State<AppState>,
    staff: Staff,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<RewardForm>,
) -> Response {
    if let Err(refused) = staff.require(Permission::ManageCatalogue) {
        return refused;
    }
    if let Err(refused) = staff.check_csrf(&form.csrf) {
        return refused;
    }
    let Ok(reward_id) = RewardId::parse(&id) else {
        return page::not_found(staff.t);
    };
    let fault = match reward_of(&form) {
        Err(fault) => fault,
        Ok(typed) => {
            let change = patron_store::admin::RewardChange {
                name: Some(typed.name),
                description: Some(typed.description),
                cost: Some(typed.cost.0),
                stock: Some(typed.stock),
                per_member_limit: Some(typed.per_member_limit),
                voucher_valid_days: Some(typed.voucher_valid_days),
                ..Default::default()
            };
            let actor = Actor::user(&staff.user.id);
            match state
                .store
                .update_reward(staff.tenant_id, reward_id, &change, &actor)
                .await
            {
                Ok(_) => {
                    return Redirect::to("/admin/programme?saved_reward=1#rewards").into_response()
                }
                Err(StoreError::Invalid { field, message }) => {
                    Fault::from_validation(&field, &message)
                }
                Err(StoreError::NotFound { .. }) => return page::not_found(staff.t),
                Err(error) => return page::failed(staff.t, error),
            }
        }
    };
    render_with(
        StatusCode::UNPROCESSABLE_ENTITY,
        &RewardPage {
            t: staff.t,
            staff,
            id,
            form,
            fault: Some(fault),
        },
    )
}
