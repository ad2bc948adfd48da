//! `patron import members|purchases FILE` and `patron export members|ledger|liability`: thin
//! commands over `patron_server::imports` and `patron_server::exports`.

use crate::DatabaseArgs;
use anyhow::Context;
use patron_core::TenantId;
use patron_server::exports::{write_export, ExportKind};
use patron_server::imports::{import_csv, ImportKind, RowError};
use patron_store::{Journal, JournalConfig, Store};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum ImportWhat {
    /// phone,name,email,birthday,gender,city,tags (tags separated by `|`; only phone needed)
    Members,
    /// receipt_id,phone,amount,store,occurred_at (further columns ignored)
    Purchases,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum ExportWhat {
    Members,
    Ledger,
    Liability,
}

#[derive(clap::Args)]
pub(crate) struct ImportArgs {
    /// What the file holds.
    #[arg(value_enum)]
    what: ImportWhat,
    /// The CSV file, with a header line.
    file: PathBuf,
    /// The tenant to import into.
    #[arg(long)]
    tenant: String,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Where rejected rows go, as `line,reason` (default: FILE.errors.csv).
    #[arg(long)]
    errors: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    /// What to export.
    #[arg(value_enum)]
    what: ExportWhat,
    /// The tenant to export.
    #[arg(long)]
    tenant: String,
    #[command(flatten)]
    database: DatabaseArgs,
    /// The file to write (default: standard output).
    #[arg(long)]
    output: Option<PathBuf>,
}

fn tenant_id(text: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(text).map_err(|_| anyhow::anyhow!("--tenant: `{text}` is not a tenant id"))
}

/// The rejected rows' file, created at the first rejected row.
struct ErrorFile {
    path: PathBuf,
    writer: Option<csv::Writer<std::fs::File>>,
}

impl ErrorFile {
    fn write(&mut self, errors: &[RowError]) -> std::io::Result<()> {
        if errors.is_empty() {
            return Ok(());
        }
        if self.writer.is_none() {
            let mut writer = csv::Writer::from_path(&self.path)?;
            writer.write_record(["line", "reason"])?;
            self.writer = Some(writer);
        }
        let writer = self.writer.as_mut().expect("opened above");
        for error in errors {
            let reason = patron_store::exports::spreadsheet_safe(&error.reason);
            writer.write_record([error.line.to_string(), reason.into_owned()])?;
        }
        writer.flush()
    }
}

fn default_errors_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".errors.csv");
    PathBuf::from(name)
}

pub(crate) async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let tenant = tenant_id(&args.tenant)?;
    let kind = match args.what {
        ImportWhat::Members => ImportKind::Members,
        ImportWhat::Purchases => ImportKind::Purchases,
    };
    let file =
        std::fs::File::open(&args.file).with_context(|| format!("open {}", args.file.display()))?;
    let size = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let errors_path = args
        .errors
        .clone()
        .unwrap_or_else(|| default_errors_path(&args.file));
    if errors_path.exists() {
        std::fs::remove_file(&errors_path)
            .with_context(|| format!("remove the old {}", errors_path.display()))?;
    }
    let store = Store::open(&args.database.config())
        .await
        .context("open the database")?;
    store.tenant(tenant).await.context("find the tenant")?;
    let (journal, writer) = Journal::start(store.clone(), JournalConfig::default());
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {msg}",
        )
        .expect("a valid progress template"),
    );
    let mut error_file = ErrorFile {
        path: errors_path.clone(),
        writer: None,
    };
    let started = Instant::now();
    let reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let outcome = import_csv(
        store.clone(),
        journal.clone(),
        tenant,
        kind,
        reader,
        |summary, errors| {
            bar.set_position(summary.bytes_read);
            bar.set_message(format!(
                "{} rows, {} rejected",
                summary.rows_read, summary.rejected
            ));
            error_file.write(errors)
        },
    )
    .await;
    bar.finish_and_clear();
    journal.stop().await;
    writer.await?;
    store.close().await;
    let summary = outcome.with_context(|| format!("import {}", args.file.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "read {}, accepted {}, duplicates {}, rejected {} in {seconds:.1} s ({:.0} rows/s)",
        summary.rows_read,
        summary.accepted,
        summary.duplicates,
        summary.rejected,
        summary.rows_read as f64 / seconds.max(0.001),
    );
    if summary.rejected > 0 {
        println!("rejected rows: {}", errors_path.display());
    }
    Ok(())
}

pub(crate) async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let tenant = tenant_id(&args.tenant)?;
    let kind = match args.what {
        ExportWhat::Members => ExportKind::Members,
        ExportWhat::Ledger => ExportKind::Ledger,
        ExportWhat::Liability => ExportKind::Liability,
    };
    let store = Store::open(&args.database.config())
        .await
        .context("open the database")?;
    let written = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("create {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let written = write_export(store.clone(), tenant, kind, &mut out).await?;
            out.flush()?;
            written
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written = write_export(store.clone(), tenant, kind, &mut out).await?;
            out.flush()?;
            written
        }
    };
    store.close().await;
    if let Some(path) = &args.output {
        eprintln!("{written} bytes written to {}", path.display());
    }
    Ok(())
}
