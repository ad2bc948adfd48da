//! `patron bench campaigns`: how long starting a campaign to a million members takes (its
//! audience fixed, a message rendered per member from two variants with a ZNS template and an
//! SMS fallback, the hold-out drawn, every row queued), against writing the same rows to the
//! same outbox table in the same run (the floor: no audience, no rendering, no draws).

use crate::bench::{BackendChoice, BenchDatabase};
use patron_app::campaigns::{
    CampaignDefinition, Channel, Purpose, Variant, ZnsContent, QUEUE_CHUNK,
};
use patron_app::{App, Grant};
use patron_core::segment::SegmentDefinition;
use patron_store::audit::Actor;
use patron_store::users::Role;
use patron_store::{DatabaseConfig, Journal, JournalConfig, Store};
use std::collections::BTreeMap;
use std::time::Instant;

/// Goal (issue 12): a million messages rendered and queued within this many seconds.
const QUEUE_GOAL_SECONDS: f64 = 20.0;
/// Goal: at most this many times the floor's time.
const FLOOR_RATIO_GOAL: f64 = 2.0;

#[derive(clap::Args)]
pub struct CampaignsArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendChoice,
    /// Members generated before the run (all of them in the campaign's segment).
    #[arg(long, default_value_t = 1_000_000)]
    members: usize,
    /// PostgreSQL server to create the benchmark database on.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
}

pub async fn run(args: CampaignsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.members > 0, "members must be more than 0");
    let database = BenchDatabase::create(args.backend, &args.postgres).await?;
    let outcome = bench(&args, &database).await;
    database.drop().await?;
    outcome
}

fn definition(segment_id: &str) -> CampaignDefinition {
    let variant = |name: &str, greeting: &str| {
        Variant {
        name: name.into(),
        weight: 1,
        zns: Some(ZnsContent {
            template_id: "401234".into(),
            data: BTreeMap::from([
                ("name".into(), "{{ member.first_name }}".into()),
                ("points".into(), "{{ member.points }}".into()),
                ("tier".into(), "{{ member.tier }}".into()),
            ]),
        }),
        sms: Some(format!(
            "{{{{ tenant.name }}}}: {greeting} {{{{ member.first_name }}}}, ban co {{{{ member.points }}}} diem. Giam 20% den Chu nhat."
        )),
        email: None,
    }
    };
    CampaignDefinition {
        name: "Bench".into(),
        segment_id: segment_id.into(),
        purpose: Purpose::Advertising,
        channels: vec![Channel::Zns, Channel::Sms],
        variants: vec![variant("A", "Chao"), variant("B", "Xin chao")],
        holdout_percent: 10,
        attribution_days: 7,
        scheduled_at: None,
    }
}

async fn bench(args: &CampaignsArgs, database: &BenchDatabase) -> anyhow::Result<()> {
    let store = Store::open(&DatabaseConfig::new(database.url.clone())).await?;
    let tenant = store
        .create_tenant(&patron_store::admin::NewTenant::vietnamese(
            "Bench campaigns",
        ))
        .await?;
    let now = chrono::Utc::now();
    let zone = store.tenant(tenant).await?.zone;
    let today = patron_store::figures::local_day(zone, now);
    let micros = patron_core::time::to_micros(now);
    let started = Instant::now();
    for sql in crate::bench_segments::seed_sql(store.backend(), args.members) {
        let count = if sql.contains("$3") { 3 } else { 2 };
        let values: Vec<patron_store::db::Bind> =
            vec![tenant.to_string().into(), micros.into(), today.into()];
        store
            .db()
            .execute(&sql, values.into_iter().take(count).collect())
            .await?;
    }
    println!(
        "generated {} members in {:.1} s ({:?})",
        args.members,
        started.elapsed().as_secs_f64(),
        store.backend()
    );
    let (journal, writer) = Journal::start(store.clone(), JournalConfig::default());
    let app = App::new(store.clone(), journal.clone());
    let grant = Grant {
        tenant_id: tenant,
        role: Role::Owner,
        actor: Actor::cli(),
        store_code: None,
        bucket: "bench".into(),
    };
    let started = Instant::now();
    let segment = app
        .save_segment(
            &grant,
            None,
            None,
            &SegmentDefinition {
                name: "Everyone".into(),
                condition: "member.order_count >= 1".into(),
                policy: None,
            },
        )
        .await?;
    println!(
        "segment of {} members saved (member table loaded) in {:.1} s",
        segment.members,
        started.elapsed().as_secs_f64()
    );
    let campaign = app
        .create_campaign(&grant, &definition(&segment.record.id))
        .await?;

    let started = Instant::now();
    let audience = app.start_campaign(&grant, &campaign.row.id).await?;
    let patron_seconds = started.elapsed().as_secs_f64();

    // The floor: the same rows, read back, written again under other ids.
    let mut messages = store.campaign_messages(&campaign.row.id).await?;
    let bytes: usize = messages
        .iter()
        .map(|message| message.body.len() + message.fallback.as_ref().map_or(0, String::len))
        .sum();
    for message in &mut messages {
        message.id = format!("floor:{}", message.id);
        message.campaign_id = Some("floor".into());
    }
    let started = Instant::now();
    let mut rest = messages;
    while !rest.is_empty() {
        let chunk: Vec<_> = rest.drain(..rest.len().min(QUEUE_CHUNK)).collect();
        store.queue_messages(tenant, chunk, now).await?;
    }
    let floor_seconds = started.elapsed().as_secs_f64();
    journal.stop().await;
    writer.await?;

    let report = app.campaign_report(&grant, &campaign.row.id).await?;
    println!(
        "campaign: {audience} members, {} held out, {} queued, {:.0} MB of message bodies",
        report.held_out,
        report.pending,
        bytes as f64 / 1e6
    );
    println!(
        "  start (audience, render, draw, queue): {patron_seconds:.1} s ({:.0} messages/s)",
        audience as f64 / patron_seconds
    );
    println!(
        "  floor (the same rows written to the outbox): {floor_seconds:.1} s ({:.0} rows/s)",
        audience as f64 / floor_seconds
    );
    let ratio = patron_seconds / floor_seconds;
    println!("  ratio: {ratio:.2}× floor");
    println!("goals:");
    println!(
        "  {audience} messages rendered and queued < {QUEUE_GOAL_SECONDS} s: {patron_seconds:.1} s, {}",
        if patron_seconds < QUEUE_GOAL_SECONDS { "met" } else { "miss" }
    );
    println!(
        "  ≤ {FLOOR_RATIO_GOAL}× floor: {ratio:.2}×, {}",
        if ratio <= FLOOR_RATIO_GOAL {
            "met"
        } else {
            "miss"
        }
    );
    Ok(())
}
