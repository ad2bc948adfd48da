//! Who is held out of a campaign, and which variant the others get: drawn from a hash of the
//! campaign and member ids, so the draw needs no state and gives the same answer every time,
//! on every machine, in every version.
//!
//! The draw of `(domain, campaign, member)` is the first 8 bytes, big-endian, of
//! `SHA-256(domain ‖ 0x00 ‖ u64_be(len(campaign)) ‖ campaign ‖ member)` (ids as UTF-8), so an
//! analyst can recompute it outside Patron. The hold-out and the variant use different domains,
//! so which variant a member gets says nothing about whether they were held out.

use sha2::{Digest, Sha256};

/// A whole in basis points: a share of 10_000 is everyone.
pub const BASIS_POINTS_WHOLE: u32 = 10_000;

/// The most variants one campaign may split its sent group into.
pub const VARIANTS_MAX: usize = 16;

const HOLDOUT_DOMAIN: &[u8] = b"patron/outreach/holdout/v1";
const VARIANT_DOMAIN: &[u8] = b"patron/outreach/variant/v1";

/// Whether the member is in the campaign's hold-out group, which receives nothing and serves as
/// the comparison: the draw modulo [`BASIS_POINTS_WHOLE`] falls below `share_basis_points`
/// (250 holds out 2.5 %). A share of 0 holds out no one; [`BASIS_POINTS_WHOLE`] or more, everyone.
pub fn in_holdout(campaign_id: &str, member_id: &str, share_basis_points: u32) -> bool {
    let draw = draw(HOLDOUT_DOMAIN, campaign_id, member_id) % u64::from(BASIS_POINTS_WHOLE);
    draw < u64::from(share_basis_points)
}

/// The variant (an index into `weights`) the member gets, each with a chance proportional to
/// its weight; a variant of weight 0 is never chosen. `None` when there is nothing to choose
/// from: no weights, all zero, or more than [`VARIANTS_MAX`].
pub fn variant(campaign_id: &str, member_id: &str, weights: &[u32]) -> Option<usize> {
    if weights.len() > VARIANTS_MAX {
        return None;
    }
    let total: u64 = weights.iter().map(|weight| u64::from(*weight)).sum();
    if total == 0 {
        return None;
    }
    // Scale the draw onto 0..total by its high bits rather than a remainder: same spread, and
    // a small weight keeps exactly its share up to 2^-64 per unit of weight.
    let draw = draw(VARIANT_DOMAIN, campaign_id, member_id);
    let mut point = ((u128::from(draw) * u128::from(total)) >> 64) as u64;
    for (index, weight) in weights.iter().enumerate() {
        let weight = u64::from(*weight);
        if point < weight {
            return Some(index);
        }
        point -= weight;
    }
    // `point < total` makes the loop return; kept as an answer rather than a panic.
    weights.iter().rposition(|weight| *weight > 0)
}

fn draw(domain: &[u8], campaign_id: &str, member_id: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    hasher.update([0u8]);
    hasher.update((campaign_id.len() as u64).to_be_bytes());
    hasher.update(campaign_id.as_bytes());
    hasher.update(member_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const IDS: u32 = 100_000;

    fn member(n: u32) -> String {
        format!("01J{n:09}")
    }

    /// Within 5 standard deviations of the binomial: a false alarm about once in 3.5 million
    /// runs, and the ids are fixed, so the outcome does not change between runs anyway.
    fn tolerance(share: f64) -> f64 {
        5.0 * (share * (1.0 - share) * f64::from(IDS)).sqrt()
    }

    #[test]
    fn the_draw_is_pinned() {
        // Recomputed outside Patron, with Python's hashlib:
        //   d = sha256(b"patron/outreach/holdout/v1\0" + (6).to_bytes(8, "big")
        //              + b"spring" + b"member-1").digest()
        //   int.from_bytes(d[:8], "big") == 15998039190511095947, % 10_000 == 5947
        // and with the variant domain, 9483951435541996294, * 4 >> 64 == 2.
        assert_eq!(
            draw(HOLDOUT_DOMAIN, "spring", "member-1"),
            15_998_039_190_511_095_947
        );
        assert!(in_holdout("spring", "member-1", 5_948));
        assert!(!in_holdout("spring", "member-1", 5_947));
        assert_eq!(
            draw(VARIANT_DOMAIN, "spring", "member-1"),
            9_483_951_435_541_996_294
        );
        assert_eq!(variant("spring", "member-1", &[1, 1, 1, 1]), Some(2));
    }

    #[test]
    fn hold_out_shares_hold_over_many_members() {
        for share in [100u32, 500, 1_000, 2_500, 5_000] {
            let held = (0..IDS)
                .filter(|n| in_holdout("campaign-7", &member(*n), share))
                .count() as f64;
            let expected = f64::from(IDS) * f64::from(share) / f64::from(BASIS_POINTS_WHOLE);
            let fraction = f64::from(share) / f64::from(BASIS_POINTS_WHOLE);
            assert!(
                (held - expected).abs() <= tolerance(fraction),
                "share {share}: {held} held out, {expected} expected"
            );
        }
    }

    #[test]
    fn the_edges_hold_out_no_one_or_everyone() {
        for n in 0..10_000 {
            let id = member(n);
            assert!(!in_holdout("c", &id, 0));
            assert!(in_holdout("c", &id, BASIS_POINTS_WHOLE));
            assert!(in_holdout("c", &id, u32::MAX));
            assert!(in_holdout("c", &id, BASIS_POINTS_WHOLE - 1) || !in_holdout("c", &id, 1));
        }
    }

    #[test]
    fn variant_shares_follow_the_weights_and_ignore_the_hold_out() {
        let weights = [1u32, 0, 3];
        let mut counts = [[0u32; 3]; 2];
        for n in 0..IDS {
            let id = member(n);
            let chosen = variant("campaign-7", &id, &weights).unwrap();
            let held = in_holdout("campaign-7", &id, 5_000);
            counts[usize::from(held)][chosen] += 1;
        }
        for (held, counts) in counts.iter().enumerate() {
            let group: u32 = counts.iter().sum();
            assert_eq!(counts[1], 0, "a weight of zero is never chosen");
            let first = f64::from(counts[0]) / f64::from(group);
            // Half the ids in each group: the tolerance of a group of IDS / 2.
            let allowed = 5.0 * (0.25 * 0.75 / (f64::from(IDS) / 2.0)).sqrt();
            assert!(
                (first - 0.25).abs() <= allowed,
                "held out {held}: variant 0 got {first}"
            );
        }
    }

    #[test]
    fn nothing_to_choose_from_is_none() {
        assert_eq!(variant("c", "m", &[]), None);
        assert_eq!(variant("c", "m", &[0, 0]), None);
        assert_eq!(variant("c", "m", &[1; VARIANTS_MAX + 1]), None);
        assert_eq!(variant("c", "m", &[0, 7, 0]), Some(1));
        assert_eq!(
            variant("c", "m", &[u32::MAX; VARIANTS_MAX]).map(|i| i < VARIANTS_MAX),
            Some(true)
        );
    }

    #[test]
    fn the_campaign_and_member_cannot_trade_characters() {
        // Without the length of the campaign id, ("ab", "c") and ("a", "bc") would hash alike.
        assert_ne!(
            draw(HOLDOUT_DOMAIN, "ab", "c"),
            draw(HOLDOUT_DOMAIN, "a", "bc")
        );
        assert_ne!(
            draw(HOLDOUT_DOMAIN, "ab", "c"),
            draw(VARIANT_DOMAIN, "ab", "c")
        );
    }

    proptest! {
        #[test]
        fn the_draw_is_deterministic(
            campaign in "[a-z0-9-]{0,20}",
            member in "[A-Z0-9]{0,26}",
            share in 0u32..=12_000,
            weights in prop::collection::vec(0u32..100, 0..=VARIANTS_MAX),
        ) {
            prop_assert_eq!(
                in_holdout(&campaign, &member, share),
                in_holdout(&campaign, &member, share)
            );
            let chosen = variant(&campaign, &member, &weights);
            prop_assert_eq!(chosen, variant(&campaign, &member, &weights));
            if let Some(index) = chosen {
                prop_assert!(weights[index] > 0);
            }
            // A larger share keeps everyone a smaller one held out.
            if in_holdout(&campaign, &member, share) {
                prop_assert!(in_holdout(&campaign, &member, share.saturating_add(1)));
            }
        }
    }
}
