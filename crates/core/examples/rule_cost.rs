//! How long the costliest rules the limits still accept take on the largest purchase the API
//! takes (500 lines, each its own 200-byte category, a member with 50 tags), against a floor:
//! a plain comparison rule timed in the same run.
//!
//! `cargo run --release -p patron-core --example rule_cost`

use patron_core::programme::RuleDefinition;
use patron_core::rules::{CompiledRule, EventFacts, MemberFacts, RuleVariables};

use std::time::{Duration, Instant};

fn rule(when: &str) -> RuleDefinition {
    RuleDefinition {
        id: "worst".into(),
        name: "Worst".into(),
        when: when.into(),
        points: "1".into(),
        tier_multiplier: false,
        once_per: None,
    }
}

fn largest_purchase() -> RuleVariables {
    let name = |index: usize| format!("{index:0>200}");
    let event = EventFacts {
        kind: "purchase".into(),
        amount: 1_000_000,
        eligible_amount: 1_000_000,
        categories: (0..500).map(|index| (name(index), 1, 2_000)).collect(),
        item_count: 500,
        ..EventFacts::default()
    };
    let member = MemberFacts {
        tier: "member".into(),
        tags: (0..50).map(|index| name(index + 1_000)).collect(),
        ..MemberFacts::default()
    };
    RuleVariables::new(&event, &member)
}

/// The median of `rounds` evaluations.
fn time(compiled: &CompiledRule, variables: &RuleVariables, rounds: usize) -> Duration {
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let _ = std::hint::black_box(compiled.evaluate(variables));
            started.elapsed()
        })
        .collect();
    times.sort();
    times[rounds / 2]
}

/// `template` with `terms` copies of `term` joined by `joiner`, for the largest `terms` the
/// limits accept.
fn largest_accepted(template: &str, term: &str, joiner: &str) -> Option<(usize, CompiledRule)> {
    let mut best = None;
    for terms in 1..200 {
        let body = vec![term; terms].join(joiner);
        match CompiledRule::compile(&rule(&template.replace("BODY", &body))) {
            Ok(compiled) => best = Some((terms, compiled)),
            Err(error) => {
                if best.is_none() {
                    println!("{error}");
                }
                break;
            }
        }
    }
    best
}

fn main() {
    let variables = largest_purchase();
    let floor = CompiledRule::compile(&rule("event.amount > 1")).expect("compiles");
    let floor_time = time(&floor, &variables, 201);
    println!("floor (event.amount > 1): {floor_time:?}");
    let candidates = [
        ("event.categories.exists(c, BODY)", "c == 'x'", " || "),
        (
            "event.categories.exists(c, BODY)",
            "c in member.tags",
            " || ",
        ),
        (
            "event.categories.all(c, BODY)",
            "c in event.categories",
            " && ",
        ),
        (
            "event.categories.filter(c, BODY).size() > 1000",
            "c.startsWith('1')",
            " || ",
        ),
        ("event.categories.map(c, BODY).size() > 1000", "c", " + "),
        (
            "(event.categories + event.categories).exists(c, BODY)",
            "c in event.categories",
            " && false || ",
        ),
        (
            "['a', 'b'].exists(x, event.categories.exists(c, BODY))",
            "c == x",
            " || ",
        ),
        (
            "event.categories.exists(c, c == 'x') || BODY",
            "event.categories.exists(d, d == 'y')",
            " || ",
        ),
    ];
    let mut worst = Duration::ZERO;
    for (template, term, joiner) in candidates {
        let Some((terms, compiled)) = largest_accepted(template, term, joiner) else {
            println!("{template} with {term}: refused even once");
            continue;
        };
        let taken = time(&compiled, &variables, 21);
        worst = worst.max(taken);
        println!(
            "{template} with {terms} × `{term}` (bound {} steps): {taken:?}, {:.0}× the floor",
            compiled.cost,
            taken.as_secs_f64() / floor_time.as_secs_f64()
        );
    }
    println!("worst accepted rule: {worst:?}");
    let rules_per_programme =
        patron_core::rules::PROGRAMME_RULES_COST_MAX / patron_core::rules::RULE_COST_MAX;
    println!(
        "worst accepted programme (at most {rules_per_programme} such rules): about {:?}",
        worst * rules_per_programme as u32
    );
}
