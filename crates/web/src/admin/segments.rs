//! Segments in the admin (`/admin/segments/…`): the list with each segment's count and sales
//! policy; the builder (new and edit) — condition rows with a field picker and an operator
//! suited to the field, joined by "all of" or "any of", or a CEL condition written by hand —
//! with a live count and a sample of members before saving; a segment's page with its
//! condition, policy, versions and members (paged, and as a CSV for those who may take
//! personal data, audited); archiving. The rows become CEL in `crate::segment_condition`;
//! what a condition means and every check of a definition stay in the app layer and core.

use super::members::{date_time_of, tier_name};
use super::reader;
use super::url_encode;
use crate::admin::csv;
use crate::i18n::Texts;
use crate::page::{self, render, render_with};
use crate::segment_condition::{self, condition_of, kind_code, kind_key, Combine, Operator, Row};
use crate::staff::Staff;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use patron_app::{AppError, ErrorKind};
use patron_core::segment::{FieldKind, SalesPolicy, SegmentDefinition, POLICY_TEXT_MAX};
use patron_core::Phone;
use patron_server::auth::Permission;
use patron_server::AppState;
use patron_store::audit::Actor;
use patron_store::members::MemberSummary;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Members in one page of a segment's list.
pub const SEGMENT_MEMBERS_PAGE_SIZE: usize = 50;
/// Members read at a time for the CSV download.
const CSV_CHUNK_MEMBERS: usize = 500;
/// Highest row index a form may send (rows beyond are ignored; the builder takes fewer).
const ROW_INDEX_MAX: usize = 2 * segment_condition::ROWS_MAX;

fn segment_path(id: &str) -> String {
    format!("/admin/segments/{id}")
}

/// A phone as lists of many members show it: the first four and last three digits.
pub(crate) fn masked_phone(phone: Option<&str>) -> String {
    let Some(phone) = phone else {
        return String::new();
    };
    let national = Phone::parse(phone)
        .map(|phone| phone.national())
        .unwrap_or_else(|_| phone.to_owned());
    let characters: Vec<char> = national.chars().collect();
    if characters.len() < 8 {
        return "•••".to_owned();
    }
    let head: String = characters[..4].iter().collect();
    let tail: String = characters[characters.len() - 3..].iter().collect();
    format!("{head}•••{tail}")
}

/// A sales policy in a few words: `−5% · Giá sỉ · note`.
fn policy_summary(t: Texts, policy: Option<&SalesPolicy>) -> String {
    let Some(policy) = policy else {
        return String::new();
    };
    let mut parts = Vec::new();
    if policy.discount_percent > 0 {
        parts.push(discount_text(policy.discount_percent));
    }
    if let Some(list) = policy.price_list.as_deref().filter(|list| !list.is_empty()) {
        parts.push(t.fill("segments.policy.price_list_is", &[("list", list)]));
    }
    if let Some(note) = policy.note.as_deref().filter(|note| !note.is_empty()) {
        parts.push(note.to_owned());
    }
    parts.join(" · ")
}

/// `−5%`, as the till shows a discount.
pub(crate) fn discount_text(percent: u8) -> String {
    format!("−{percent}%")
}

/// A member in a list of a segment's members.
struct MemberLine {
    id: String,
    name: String,
    phone: String,
    tier: String,
    spend: String,
}

fn member_line(staff: &Staff, member: &MemberSummary) -> MemberLine {
    MemberLine {
        id: member.id.clone(),
        name: member
            .name
            .clone()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| staff.t.get("admin.member.no_name").to_owned()),
        phone: masked_phone(member.phone.as_deref()),
        tier: tier_name(staff, &member.tier),
        spend: staff.money(member.lifetime_spend),
    }
}

/// The page for an app-layer error that is not a form's: 403, 404 or 500.
fn error_page(t: Texts, error: AppError) -> Response {
    match error.kind {
        ErrorKind::Forbidden => page::forbidden(t),
        ErrorKind::NotFound => page::not_found(t),
        _ => page::failed(t, error),
    }
}

// ---------------------------------------------------------------------------------------------
// The list

struct SegmentRow {
    id: String,
    name: String,
    members: String,
    updated: String,
    policy: String,
}

#[derive(Template)]
#[template(path = "admin/segments.html")]
struct ListPage {
    t: Texts,
    staff: Staff,
    rows: Vec<SegmentRow>,
    may_manage: bool,
    notice: Option<&'static str>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    done: Option<String>,
}

/// `/admin/segments`: every live segment, by name.
pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Err(refused) = reader(&staff) {
        return refused;
    }
    let segments = match state.app.segments(&staff.grant()).await {
        Ok(segments) => segments,
        Err(error) => return error_page(staff.t, error),
    };
    let t = staff.t;
    let rows = segments
        .iter()
        .map(|segment| SegmentRow {
            id: segment.record.id.clone(),
            name: segment.record.name.clone(),
            members: staff.points(segment.members as i64),
            updated: date_time_of(&staff, &segment.record.updated_at),
            policy: policy_summary(t, segment.record.policy.as_ref()),
        })
        .collect();
    render(&ListPage {
        t,
        rows,
        may_manage: staff.may(Permission::ManageMarketing),
        notice: (query.done.as_deref() == Some("archived")).then_some("segments.done.archived"),
        staff,
    })
}

// ---------------------------------------------------------------------------------------------
// The builder

/// A field in the picker.
struct FieldOption {
    name: &'static str,
    label: String,
    kind: &'static str,
    help: String,
}

struct FieldGroup {
    label: &'static str,
    options: Vec<FieldOption>,
}

struct OperatorOption {
    code: &'static str,
    label: &'static str,
    kind: &'static str,
}

struct OperatorGroup {
    label: &'static str,
    operators: Vec<OperatorOption>,
}

const KINDS: [FieldKind; 4] = [
    FieldKind::Number,
    FieldKind::Text,
    FieldKind::YesNo,
    FieldKind::Tags,
];

/// What a field means in the visitor's language, else core's own words.
fn field_label(t: Texts, name: &str, core_help: &'static str) -> String {
    let key = format!("segments.field.{name}");
    match t.get(&key) {
        text if text == key => core_help.to_owned(),
        text => text.to_owned(),
    }
}

/// What values a kind of field takes, shown under a row.
fn kind_help(t: Texts, kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::Number => t.get("segments.help.number"),
        FieldKind::Text => t.get("segments.help.text"),
        FieldKind::YesNo => t.get("segments.help.yes_no"),
        FieldKind::Tags => t.get("segments.help.tags"),
    }
}

fn field_groups(state: &AppState, t: Texts) -> Vec<FieldGroup> {
    let fields = state.app.segment_fields();
    KINDS
        .iter()
        .map(|kind| FieldGroup {
            label: t.get(kind_key(*kind)),
            options: fields
                .iter()
                .filter(|field| field.kind == *kind)
                .map(|field| FieldOption {
                    name: field.name,
                    label: field_label(t, field.name, field.help),
                    kind: kind_code(field.kind),
                    help: kind_help(t, field.kind).to_owned(),
                })
                .collect(),
        })
        .collect()
}

fn operator_groups(t: Texts) -> Vec<OperatorGroup> {
    KINDS
        .iter()
        .map(|kind| OperatorGroup {
            label: t.get(kind_key(*kind)),
            operators: Operator::ALL
                .iter()
                .filter(|operator| operator.kind() == *kind)
                .map(|operator| OperatorOption {
                    code: operator.code(),
                    label: t.get(operator.label_key()),
                    kind: kind_code(*kind),
                })
                .collect(),
        })
        .collect()
}

/// The builder's form as typed.
#[derive(Clone, Debug, Default)]
struct BuilderForm {
    name: String,
    /// The version the form was drawn from, sent back so a save meanwhile is noticed.
    version: String,
    combine: Combine,
    /// The condition is the CEL typed, not the rows.
    write_cel: bool,
    cel: String,
    rows: Vec<Row>,
    discount: String,
    price_list: String,
    note: String,
}

impl BuilderForm {
    /// The form as sent: `name=value` pairs, rows as `rows[2].field`.
    fn from_pairs(pairs: &[(String, String)]) -> (BuilderForm, String, String) {
        let mut form = BuilderForm::default();
        let (mut action, mut csrf) = (String::new(), String::new());
        let mut rows: BTreeMap<usize, Row> = BTreeMap::new();
        for (name, value) in pairs {
            match name.as_str() {
                "csrf" => csrf = value.clone(),
                "action" => action = value.clone(),
                "name" => form.name = value.clone(),
                "version" => form.version = value.clone(),
                "combine" => form.combine = Combine::parse(value),
                "write_cel" => form.write_cel = value == "yes",
                "cel" => form.cel = value.clone(),
                "discount_percent" => form.discount = value.clone(),
                "price_list" => form.price_list = value.clone(),
                "note" => form.note = value.clone(),
                other => {
                    let Some((index, part)) = row_part(other) else {
                        continue;
                    };
                    let row = rows.entry(index).or_default();
                    match part {
                        "field" => row.field = value.clone(),
                        "operator" => row.operator = value.clone(),
                        "value" => row.value = value.clone(),
                        _ => {}
                    }
                }
            }
        }
        form.rows = rows.into_values().filter(|row| !row.is_blank()).collect();
        (form, action, csrf)
    }

    fn of_segment(record: &patron_store::segments::SegmentRecord) -> BuilderForm {
        let policy = record.policy.clone().unwrap_or_default();
        let mut form = BuilderForm {
            name: record.name.clone(),
            version: record.version.to_string(),
            cel: record.condition.clone(),
            discount: match policy.discount_percent {
                0 => String::new(),
                percent => percent.to_string(),
            },
            price_list: policy.price_list.unwrap_or_default(),
            note: policy.note.unwrap_or_default(),
            ..BuilderForm::default()
        };
        match segment_condition::rows_of(&record.condition) {
            Some((combine, rows)) => {
                form.combine = combine;
                form.rows = rows;
            }
            None => form.write_cel = true,
        }
        form
    }
}

/// `rows[3].value` → (3, "value"), for indices the builder could have drawn.
fn row_part(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("rows[")?;
    let (index, part) = rest.split_once("].")?;
    let index: usize = index.parse().ok()?;
    (index < ROW_INDEX_MAX).then_some((index, part))
}

/// What the live count found: "12 of 340 members" and a sample of them.
struct Counted {
    headline: String,
    sample: Vec<MemberLine>,
}

#[derive(Template)]
#[template(path = "admin/segment_builder.html")]
struct BuilderPage {
    t: Texts,
    staff: Staff,
    /// The segment edited; `None` for a new one.
    segment_id: Option<String>,
    title: String,
    form: BuilderForm,
    /// The rows shown: those typed and blank ones to add more.
    shown_rows: Vec<Row>,
    /// The CEL the rows make, shown read-only.
    generated: String,
    /// Messages by form field (`name`, `rows[2].value`, `rows`, `cel`, `discount_percent`…).
    errors: Vec<(String, String)>,
    conflict: Option<String>,
    counted: Option<Counted>,
    groups: Vec<FieldGroup>,
    operators: Vec<OperatorGroup>,
}

impl BuilderPage {
    fn new(
        state: &AppState,
        staff: Staff,
        segment_id: Option<String>,
        form: BuilderForm,
    ) -> BuilderPage {
        let t = staff.t;
        let blanks = if form.rows.is_empty() { 2 } else { 1 };
        let mut shown_rows = form.rows.clone();
        shown_rows.extend(std::iter::repeat_n(Row::default(), blanks));
        let generated = condition_of(&form.rows, form.combine).unwrap_or_default();
        BuilderPage {
            title: match segment_id {
                Some(_) => t.fill("segments.builder.edit_title", &[("name", &form.name)]),
                None => t.get("segments.builder.new_title").to_owned(),
            },
            segment_id,
            shown_rows,
            generated,
            errors: Vec::new(),
            conflict: None,
            counted: None,
            groups: field_groups(state, t),
            operators: operator_groups(t),
            form,
            t,
            staff,
        }
    }

    fn action(&self) -> String {
        match &self.segment_id {
            Some(id) => format!("{}/edit", segment_path(id)),
            None => "/admin/segments/new".to_owned(),
        }
    }

    fn add_error(&mut self, field: &str, message: String) {
        if self.error(field).is_none() {
            self.errors.push((field.to_owned(), message));
        }
    }

    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, message)| message.as_str())
    }

    fn row_error(&self, index: &usize, part: &str) -> Option<&str> {
        self.error(&format!("rows[{index}].{part}"))
    }

    /// The help under a row: what its field takes.
    fn row_help(&self, row: &Row) -> String {
        self.groups
            .iter()
            .flat_map(|group| &group.options)
            .find(|option| option.name == row.field)
            .map(|option| option.help.clone())
            .unwrap_or_default()
    }

    fn is_any(&self) -> bool {
        self.form.combine == Combine::Any
    }
}

/// Where the error of the condition goes: the CEL box or the rows.
fn condition_field(form: &BuilderForm) -> &'static str {
    if form.write_cel {
        "cel"
    } else {
        "rows"
    }
}

/// The sales policy typed, or the fields at fault.
fn policy_of(form: &BuilderForm) -> Result<Option<SalesPolicy>, Vec<(&'static str, &'static str)>> {
    let mut faults = Vec::new();
    let typed = form.discount.trim().trim_end_matches('%').trim();
    let discount = match crate::format::parse_whole(typed) {
        Ok(None) => 0,
        Ok(Some(percent @ 0..=100)) => percent as u8,
        _ => {
            faults.push(("discount_percent", "segments.error.discount_invalid"));
            0
        }
    };
    let text = |value: &str, field: &'static str, faults: &mut Vec<_>| {
        let value = value.trim();
        if value.chars().count() > POLICY_TEXT_MAX {
            faults.push((field, "segments.error.policy_text_too_long"));
        }
        (!value.is_empty()).then(|| value.to_owned())
    };
    let price_list = text(&form.price_list, "price_list", &mut faults);
    let note = text(&form.note, "note", &mut faults);
    if !faults.is_empty() {
        return Err(faults);
    }
    if discount == 0 && price_list.is_none() && note.is_none() {
        return Ok(None);
    }
    Ok(Some(SalesPolicy {
        discount_percent: discount,
        price_list,
        note,
    }))
}

/// An app-layer refusal of a definition, on the form next to its field.
fn show_refusal(page: &mut BuilderPage, error: &AppError) {
    let t = page.t;
    let field = error.field.as_deref().unwrap_or("");
    let message = &error.message;
    match field {
        "name" if message.contains("another segment") => {
            page.add_error("name", t.get("segments.error.name_taken").to_owned())
        }
        "name" if message.contains("at most") && message.contains("segments") => {
            page.add_error("name", t.get("segments.error.too_many_segments").to_owned())
        }
        "name" => page.add_error("name", t.get("segments.error.name_length").to_owned()),
        "policy.discount_percent" => page.add_error(
            "discount_percent",
            t.get("segments.error.discount_invalid").to_owned(),
        ),
        "policy.price_list" | "policy.note" => page.add_error(
            field.trim_start_matches("policy."),
            t.get("segments.error.policy_text_too_long").to_owned(),
        ),
        _ => {
            let target = condition_field(&page.form);
            page.add_error(
                target,
                t.fill("segments.error.condition", &[("detail", message)]),
            )
        }
    }
}

/// `/admin/segments/new`: an empty builder.
pub async fn new_builder(State(state): State<AppState>, staff: Staff) -> Response {
    if let Err(refused) = may_build(&staff) {
        return refused;
    }
    render(&BuilderPage::new(
        &state,
        staff,
        None,
        BuilderForm::default(),
    ))
}

/// `/admin/segments/{id}/edit`: the builder with the segment as saved.
pub async fn edit_builder(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Response {
    if let Err(refused) = may_build(&staff) {
        return refused;
    }
    let (count, _) = match state.app.segment(&staff.grant(), &id).await {
        Ok(found) => found,
        Err(error) => return error_page(staff.t, error),
    };
    let form = BuilderForm::of_segment(&count.record);
    render(&BuilderPage::new(&state, staff, Some(id), form))
}

fn may_build(staff: &Staff) -> Result<(), Response> {
    reader(staff)?;
    staff.require(Permission::ManageMarketing)
}

/// `POST /admin/segments/new`.
pub async fn submit_new(
    State(state): State<AppState>,
    staff: Staff,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    submit(&state, staff, None, &pairs).await
}

/// `POST /admin/segments/{id}/edit`.
pub async fn submit_edit(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    submit(&state, staff, Some(id), &pairs).await
}

/// The builder's buttons: `count` (the live count, nothing saved), `save` (a new version),
/// anything else draws the form again with a blank row more.
async fn submit(
    state: &AppState,
    staff: Staff,
    segment_id: Option<String>,
    pairs: &[(String, String)],
) -> Response {
    if let Err(refused) = may_build(&staff) {
        return refused;
    }
    let (mut form, action, csrf) = BuilderForm::from_pairs(pairs);
    if let Err(refused) = staff.check_csrf(&csrf) {
        return refused;
    }
    let built = condition_of(&form.rows, form.combine);
    if let (false, Ok(condition)) = (form.write_cel, &built) {
        // Switching to "write it yourself" starts from what the rows make.
        form.cel = condition.clone();
    }
    let mut page = BuilderPage::new(state, staff, segment_id, form);
    let condition = match action.as_str() {
        "count" | "save" => typed_condition(&mut page, built),
        _ => return render(&page),
    };
    if action == "count" {
        count(state, page, &condition).await
    } else {
        save(state, page, condition).await
    }
}

/// The condition the form stands for: the CEL typed, or what the rows make (their faults
/// noted on the page).
fn typed_condition(
    page: &mut BuilderPage,
    built: Result<String, Vec<segment_condition::RowFault>>,
) -> String {
    let t = page.t;
    if page.form.write_cel {
        let typed = page.form.cel.trim().to_owned();
        if typed.is_empty() {
            page.add_error("cel", t.get("segments.error.cel_required").to_owned());
        }
        return typed;
    }
    match built {
        Ok(condition) => condition,
        Err(faults) => {
            for fault in faults {
                page.add_error(&fault.field, t.get(fault.key).to_owned());
            }
            String::new()
        }
    }
}

/// The live count: how many members the condition selects now, and a few of them.
async fn count(state: &AppState, mut page: BuilderPage, condition: &str) -> Response {
    if !page.errors.is_empty() {
        return respond(&page);
    }
    let t = page.t;
    match state
        .app
        .preview_segment(&page.staff.grant(), condition)
        .await
    {
        Ok(selection) => {
            let staff = &page.staff;
            page.counted = Some(Counted {
                headline: t.fill(
                    "segments.count.headline",
                    &[
                        ("members", &staff.points(selection.members as i64)),
                        ("of", &staff.points(selection.of as i64)),
                    ],
                ),
                sample: selection
                    .sample
                    .iter()
                    .map(|member| member_line(staff, member))
                    .collect(),
            });
        }
        Err(error) if error.kind == ErrorKind::Invalid => show_refusal(&mut page, &error),
        Err(error) => return error_page(t, error),
    }
    respond(&page)
}

/// Saves the segment as a new version (the version the form was drawn from expected), then
/// shows it; a save meanwhile is a conflict, said on the form.
async fn save(state: &AppState, mut page: BuilderPage, condition: String) -> Response {
    let t = page.t;
    let name = page.form.name.trim().to_owned();
    if name.is_empty() {
        page.add_error("name", t.get("segments.error.name_required").to_owned());
    }
    let policy = match policy_of(&page.form) {
        Ok(policy) => policy,
        Err(faults) => {
            for (field, key) in faults {
                page.add_error(field, t.get(key).to_owned());
            }
            None
        }
    };
    if !page.errors.is_empty() {
        return respond(&page);
    }
    let expected_version = page.form.version.trim().parse::<i64>().ok();
    let definition = SegmentDefinition {
        name,
        condition,
        policy,
    };
    let saved = state
        .app
        .save_segment(
            &page.staff.grant(),
            page.segment_id.as_deref(),
            expected_version,
            &definition,
        )
        .await;
    match saved {
        Ok(count) => {
            Redirect::to(&format!("{}?done=saved", segment_path(&count.record.id))).into_response()
        }
        Err(error) if error.kind == ErrorKind::Conflict => {
            page.conflict = Some(t.get("segments.error.conflict").to_owned());
            render_with(StatusCode::CONFLICT, &page)
        }
        Err(error) if error.kind == ErrorKind::Invalid => {
            show_refusal(&mut page, &error);
            respond(&page)
        }
        Err(error) => error_page(t, error),
    }
}

/// The builder again: 200, or 422 when something is to be fixed.
fn respond(page: &BuilderPage) -> Response {
    if page.errors.is_empty() {
        render(page)
    } else {
        render_with(StatusCode::UNPROCESSABLE_ENTITY, page)
    }
}

// ---------------------------------------------------------------------------------------------
// A segment's page

struct VersionRow {
    version: i64,
    at: String,
    who: String,
    name: String,
    condition: String,
    policy: String,
}

#[derive(Template)]
#[template(path = "admin/segment.html")]
struct SegmentPage {
    t: Texts,
    staff: Staff,
    id: String,
    name: String,
    version: i64,
    members: String,
    condition: String,
    discount: Option<String>,
    price_list: Option<String>,
    note: Option<String>,
    updated: String,
    versions: Vec<VersionRow>,
    rows: Vec<MemberLine>,
    page_number: usize,
    previous: Option<String>,
    next: Option<String>,
    may_manage: bool,
    may_export: bool,
    notice: Option<&'static str>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SegmentQuery {
    page: Option<String>,
    done: Option<String>,
}

/// `/admin/segments/{id}?page=N`: the segment, with a page of its members.
pub async fn show(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Query(query): Query<SegmentQuery>,
) -> Response {
    if let Err(refused) = reader(&staff) {
        return refused;
    }
    let t = staff.t;
    let grant = staff.grant();
    let page_number = query
        .page
        .as_deref()
        .and_then(|page| page.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, 1_000_000);
    let offset = (page_number - 1) * SEGMENT_MEMBERS_PAGE_SIZE;
    let (count, members) = match state
        .app
        .segment_members(&grant, &id, offset, SEGMENT_MEMBERS_PAGE_SIZE)
        .await
    {
        Ok(found) => found,
        Err(error) => return error_page(t, error),
    };
    let versions = match state.app.segment_versions(&grant, &id).await {
        Ok(versions) => versions,
        Err(error) => return error_page(t, error),
    };
    let (users, keys) = match (
        state.store.users(staff.tenant_id).await,
        state.store.api_keys(staff.tenant_id).await,
    ) {
        (Ok(users), Ok(keys)) => (users, keys),
        (Err(error), _) | (_, Err(error)) => return page::failed(t, error),
    };
    let path = segment_path(&id);
    let record = &count.record;
    let policy = record.policy.clone().unwrap_or_default();
    render(&SegmentPage {
        id: record.id.clone(),
        name: record.name.clone(),
        version: record.version,
        members: staff.points(count.members as i64),
        condition: record.condition.clone(),
        discount: (policy.discount_percent > 0).then(|| discount_text(policy.discount_percent)),
        price_list: policy.price_list.clone(),
        note: policy.note.clone(),
        updated: date_time_of(&staff, &record.updated_at),
        versions: versions
            .iter()
            .map(|version| VersionRow {
                version: version.version,
                at: date_time_of(&staff, &version.created_at),
                who: crate::settings::actor_label(t, &users, &keys, &version.actor),
                name: version.name.clone(),
                condition: version.condition.clone(),
                policy: policy_summary(t, version.policy.as_ref()),
            })
            .collect(),
        rows: members
            .iter()
            .map(|member| member_line(&staff, member))
            .collect(),
        page_number,
        previous: (page_number > 1).then(|| format!("{path}?page={}#members", page_number - 1)),
        next: (offset + members.len() < count.members)
            .then(|| format!("{path}?page={}#members", page_number + 1)),
        may_manage: staff.may(Permission::ManageMarketing),
        may_export: staff.may(Permission::ExportPersonalData),
        notice: match query.done.as_deref() {
            Some("saved") => Some("segments.done.saved"),
            _ => None,
        },
        t,
        staff,
    })
}

// ---------------------------------------------------------------------------------------------
// The CSV download and archiving

/// `/admin/segments/{id}/members.csv`: every member of the segment with their contact details
/// and figures, streamed a chunk of members at a time. Owners and managers only
/// (`ExportPersonalData`); each download is written to the audit log.
pub async fn download(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Response {
    if let Err(refused) =
        reader(&staff).and_then(|()| staff.require(Permission::ExportPersonalData))
    {
        return refused;
    }
    let t = staff.t;
    let (count, ids) = match state.app.segment_member_ids(&staff.grant(), &id).await {
        Ok(found) => found,
        Err(error) => return error_page(t, error),
    };
    let taken = patron_store::audit::Change {
        tenant_id: staff.tenant_id,
        actor: &Actor::user(&staff.user.id),
        action: "export.segment_members",
        subject: format!("segment:{}", count.record.id),
        before: None,
        after: None,
    };
    if let Err(error) = state.store.audit(&taken).await {
        return page::failed(t, error);
    }
    let header = csv::line(
        [
            "segments.csv.id",
            "segments.csv.name",
            "segments.csv.phone",
            "segments.csv.email",
            "segments.csv.tier",
            "segments.csv.points",
            "segments.csv.spend",
            "segments.csv.orders",
            "segments.csv.joined",
        ]
        .iter()
        .map(|key| t.get(key).to_owned()),
    );
    let chunks: Vec<Vec<patron_core::MemberId>> = ids
        .chunks(CSV_CHUNK_MEMBERS)
        .map(<[patron_core::MemberId]>::to_vec)
        .collect();
    let store = state.store.clone();
    let tenant_id = staff.tenant_id;
    let head = futures_util::stream::once(async move {
        Ok::<String, patron_store::StoreError>(format!("\u{feff}{header}"))
    });
    let body = futures_util::stream::unfold(chunks.into_iter(), move |mut chunks| {
        let store = store.clone();
        async move {
            let chunk = chunks.next()?;
            let text = match store.member_summaries(tenant_id, &chunk).await {
                Ok(members) => Ok(members.iter().map(csv_row).collect::<String>()),
                Err(error) => {
                    tracing::error!(%error, "a segment's CSV failed part way");
                    Err(error)
                }
            };
            Some((text, chunks))
        }
    });
    let stream = futures_util::StreamExt::chain(head, body);
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"segment-{}.csv\"", url_encode(&id)),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// One member as a CSV line: figures as plain numbers, the day they joined as it was stored.
fn csv_row(member: &MemberSummary) -> String {
    csv::line([
        member.id.clone(),
        member.name.clone().unwrap_or_default(),
        member.phone.clone().unwrap_or_default(),
        member.email.clone().unwrap_or_default(),
        member.tier.clone(),
        member.balance.to_string(),
        member.lifetime_spend.to_string(),
        member.order_count.to_string(),
        member.created_at.get(..10).unwrap_or_default().to_owned(),
    ])
}

#[derive(Debug, Default, Deserialize)]
pub struct ArchiveFields {
    #[serde(default)]
    csrf: String,
}

/// `POST /admin/segments/{id}/archive`: the segment leaves the list, the till and campaigns;
/// its versions stay.
pub async fn archive(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<ArchiveFields>,
) -> Response {
    if let Err(refused) = may_build(&staff).and_then(|()| staff.check_csrf(&fields.csrf)) {
        return refused;
    }
    match state.app.archive_segment(&staff.grant(), &id).await {
        Ok(()) => Redirect::to("/admin/segments?done=archived").into_response(),
        Err(error) => error_page(staff.t, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_in_lists_show_their_ends_only() {
        assert_eq!(masked_phone(Some("+84912345678")), "0912•••678");
        assert_eq!(masked_phone(None), "");
        assert_eq!(masked_phone(Some("123")), "•••");
    }

    #[test]
    fn a_policy_is_read_from_the_form() {
        let form = |discount: &str, list: &str| BuilderForm {
            discount: discount.into(),
            price_list: list.into(),
            ..BuilderForm::default()
        };
        assert_eq!(policy_of(&form("", "")), Ok(None));
        assert_eq!(
            policy_of(&form("5%", " Sỉ ")),
            Ok(Some(SalesPolicy {
                discount_percent: 5,
                price_list: Some("Sỉ".into()),
                note: None
            }))
        );
        assert!(policy_of(&form("101", "")).is_err());
        assert!(policy_of(&form("2.5", "")).is_err());
    }

    #[test]
    fn rows_are_read_from_the_form_pairs() {
        let pairs: Vec<(String, String)> = [
            ("rows[1].field", "tier"),
            ("rows[1].operator", "is"),
            ("rows[1].value", "gold"),
            ("rows[0].field", ""),
            ("rows[0].value", ""),
            ("rows[999].field", "tier"),
            ("combine", "any"),
            ("action", "count"),
        ]
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        let (form, action, _) = BuilderForm::from_pairs(&pairs);
        assert_eq!(action, "count");
        assert_eq!(form.combine, Combine::Any);
        assert_eq!(form.rows, vec![Row::new("tier", Operator::Is, "gold")]);
    }

    #[test]
    fn every_field_has_a_label_in_both_languages() {
        for locale in [crate::i18n::Locale::Vi, crate::i18n::Locale::En] {
            let t = locale.texts();
            for field in patron_core::segment::fields() {
                let key = format!("segments.field.{}", field.name);
                assert_ne!(t.get(&key), key, "{key} in {}", locale.code());
            }
        }
    }
}
