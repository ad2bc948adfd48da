//! Lots: points earned together, with one maturity (end of the return window) and one expiry.
//! A member's open lots always sum to their balance. Spending takes mature lots that expire
//! first. A refund that finds its points already spent leaves a *debt lot* (negative remainder)
//! that later earnings repay first: the balance goes negative only this way, and never silently.

use crate::time::Timestamp;
use crate::{LotId, Points};
use serde::Serialize;

/// A lot of points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lot {
    pub id: LotId,
    /// Points the lot was created with (a debt lot: 0).
    pub earned: Points,
    /// Points left; negative only for a debt lot.
    pub remaining: Points,
    pub matures_at: Timestamp,
    /// `None`: never expires.
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl Lot {
    pub fn is_debt(&self) -> bool {
        self.remaining.is_negative()
    }

    pub fn is_mature(&self, now: Timestamp) -> bool {
        self.matures_at <= now
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        matches!(self.expires_at, Some(expires_at) if expires_at <= now)
    }

    /// Spendable now: positive, mature, not expired.
    pub fn is_available(&self, now: Timestamp) -> bool {
        self.remaining.is_positive() && self.is_mature(now) && !self.is_expired(now)
    }
}

/// Points taken from (or given back to) one lot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Allocation {
    pub lot_id: LotId,
    pub points: Points,
}

/// A member's open lots, with a record of which changed since they were loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lots {
    lots: Vec<Lot>,
    changed: Vec<LotId>,
}

/// Not enough spendable points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insufficient {
    pub available: Points,
}

impl Lots {
    pub fn new(lots: Vec<Lot>) -> Lots {
        Lots {
            lots,
            changed: Vec::new(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Lot> {
        self.lots.iter()
    }

    /// Lots created or changed since loading, to be written.
    pub fn changed(&self) -> impl Iterator<Item = &Lot> {
        self.lots
            .iter()
            .filter(|lot| self.changed.contains(&lot.id))
    }

    /// Forget what changed (after it was written).
    pub fn clear_changed(&mut self) {
        self.changed.clear();
        self.lots.retain(|lot| lot.remaining != Points::ZERO);
    }

    fn touch(&mut self, id: LotId) {
        if !self.changed.contains(&id) {
            self.changed.push(id);
        }
    }

    /// Sum of all remainders: the member's balance.
    pub fn total(&self) -> Points {
        self.lots.iter().map(|lot| lot.remaining).sum()
    }

    /// Spendable now.
    pub fn available(&self, now: Timestamp) -> Points {
        self.lots
            .iter()
            .filter(|lot| lot.is_available(now))
            .map(|lot| lot.remaining)
            .sum()
    }

    /// Positive, not expired, still in the return window.
    pub fn pending(&self, now: Timestamp) -> Points {
        self.lots
            .iter()
            .filter(|lot| {
                lot.remaining.is_positive() && !lot.is_mature(now) && !lot.is_expired(now)
            })
            .map(|lot| lot.remaining)
            .sum()
    }

    /// Debt left by refunds of points already spent (a positive number, or zero).
    pub fn debt(&self) -> Points {
        -self
            .lots
            .iter()
            .filter(|lot| lot.is_debt())
            .map(|lot| lot.remaining)
            .sum::<Points>()
    }

    /// Spendable points that expire by `until` (not counting those already expired at `now`).
    pub fn expiring_by(&self, now: Timestamp, until: Timestamp) -> Points {
        self.lots
            .iter()
            .filter(|lot| lot.remaining.is_positive() && !lot.is_expired(now))
            .filter(|lot| matches!(lot.expires_at, Some(expires_at) if expires_at <= until))
            .map(|lot| lot.remaining)
            .sum()
    }

    /// Adds an earning. Debt is repaid first; what is left becomes a new lot. Returns the new
    /// lot's id when one was made.
    pub fn credit(&mut self, points: Points, lot: Lot) -> Option<LotId> {
        assert!(points.is_positive(), "credit a positive amount");
        let mut left = points;
        let debts: Vec<LotId> = self
            .lots
            .iter()
            .filter(|lot| lot.is_debt())
            .map(|lot| lot.id)
            .collect();
        for debt_id in debts {
            if !left.is_positive() {
                break;
            }
            let debt = self
                .lots
                .iter_mut()
                .find(|lot| lot.id == debt_id)
                .expect("debt lot present");
            let repaid = left.min(-debt.remaining);
            debt.remaining += repaid;
            left -= repaid;
            self.touch(debt_id);
        }
        if !left.is_positive() {
            return None;
        }
        let id = lot.id;
        self.lots.push(Lot {
            earned: left,
            remaining: left,
            ..lot
        });
        self.touch(id);
        Some(id)
    }

    /// Takes `points` from spendable lots, those that expire first first (then the oldest).
    pub fn spend(
        &mut self,
        points: Points,
        now: Timestamp,
    ) -> Result<Vec<Allocation>, Insufficient> {
        assert!(points.is_positive(), "spend a positive amount");
        let available = self.available(now);
        if available < points {
            return Err(Insufficient { available });
        }
        let mut order: Vec<usize> = (0..self.lots.len())
            .filter(|&index| self.lots[index].is_available(now))
            .collect();
        order.sort_by_key(|&index| {
            let lot = &self.lots[index];
            (
                lot.expires_at.is_none(),
                lot.expires_at,
                lot.created_at,
                lot.id,
            )
        });
        Ok(self.take_in_order(&order, points))
    }

    fn take_in_order(&mut self, order: &[usize], points: Points) -> Vec<Allocation> {
        let mut left = points;
        let mut allocations = Vec::new();
        for &index in order {
            if !left.is_positive() {
                break;
            }
            let lot = &mut self.lots[index];
            let taken = left.min(lot.remaining);
            if !taken.is_positive() {
                continue;
            }
            lot.remaining -= taken;
            left -= taken;
            allocations.push(Allocation {
                lot_id: lot.id,
                points: taken,
            });
            let id = lot.id;
            self.touch(id);
        }
        allocations
    }

    /// Takes back `points` for a refund: from the purchase's own lot first, then from spendable
    /// lots (expiring first), then from pending ones; what cannot be found becomes debt.
    pub fn claw_back(
        &mut self,
        points: Points,
        own_lot: Option<LotId>,
        now: Timestamp,
        debt_lot: Lot,
    ) -> Vec<Allocation> {
        assert!(points.is_positive(), "claw back a positive amount");
        let mut order: Vec<usize> = Vec::new();
        if let Some(own) = own_lot {
            order.extend(
                (0..self.lots.len()).filter(|&index| {
                    self.lots[index].id == own && !self.lots[index].is_expired(now)
                }),
            );
        }
        let mut others: Vec<usize> = (0..self.lots.len())
            .filter(|&index| {
                let lot = &self.lots[index];
                Some(lot.id) != own_lot && lot.remaining.is_positive() && !lot.is_expired(now)
            })
            .collect();
        others.sort_by_key(|&index| {
            let lot = &self.lots[index];
            (
                !lot.is_mature(now),
                lot.expires_at.is_none(),
                lot.expires_at,
                lot.created_at,
            )
        });
        order.extend(others);
        let mut allocations = self.take_in_order(&order, points);
        let taken: Points = allocations.iter().map(|allocation| allocation.points).sum();
        let short = points - taken;
        if short.is_positive() {
            let id = debt_lot.id;
            self.lots.push(Lot {
                earned: Points::ZERO,
                remaining: -short,
                ..debt_lot
            });
            self.touch(id);
            allocations.push(Allocation {
                lot_id: id,
                points: short,
            });
        }
        allocations
    }

    /// Gives back points taken by `allocations` to the same lots, with their original expiry.
    /// Every lot named must be loaded (the store loads emptied lots a voucher refers to);
    /// otherwise nothing changes and the missing lot is returned.
    pub fn restore(&mut self, allocations: &[Allocation]) -> Result<(), LotId> {
        if let Some(missing) = allocations
            .iter()
            .find(|allocation| !self.contains(allocation.lot_id))
        {
            return Err(missing.lot_id);
        }
        for allocation in allocations {
            let lot = self
                .lots
                .iter_mut()
                .find(|lot| lot.id == allocation.lot_id)
                .expect("checked above");
            lot.remaining += allocation.points;
            self.touch(allocation.lot_id);
        }
        Ok(())
    }

    /// Adds a lot read from storage (also one already emptied, so it can be restored).
    pub fn insert_loaded(&mut self, lot: Lot) {
        if !self.contains(lot.id) {
            self.lots.push(lot);
        }
    }

    /// Empties every lot that has expired by `now`; returns what each lost.
    pub fn expire(&mut self, now: Timestamp) -> Vec<Allocation> {
        let mut expired = Vec::new();
        for index in 0..self.lots.len() {
            let lot = &mut self.lots[index];
            if lot.remaining.is_positive() && lot.is_expired(now) {
                expired.push(Allocation {
                    lot_id: lot.id,
                    points: lot.remaining,
                });
                lot.remaining = Points::ZERO;
                let id = lot.id;
                self.touch(id);
            }
        }
        expired
    }

    /// Whether any lot known here has `id`.
    pub fn contains(&self, id: LotId) -> bool {
        self.lots.iter().any(|lot| lot.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn at(day: i64) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::days(day)
    }

    fn lot(created: i64, matures: i64, expires: Option<i64>) -> Lot {
        Lot {
            id: LotId::new(),
            earned: Points::ZERO,
            remaining: Points::ZERO,
            matures_at: at(matures),
            expires_at: expires.map(at),
            created_at: at(created),
        }
    }

    #[test]
    fn spends_what_expires_first() {
        let mut lots = Lots::default();
        let late = lots.credit(Points(100), lot(0, 0, Some(300))).unwrap();
        let soon = lots.credit(Points(50), lot(1, 1, Some(100))).unwrap();
        let never = lots.credit(Points(70), lot(2, 2, None)).unwrap();
        let allocations = lots.spend(Points(120), at(10)).unwrap();
        assert_eq!(
            allocations,
            vec![
                Allocation {
                    lot_id: soon,
                    points: Points(50)
                },
                Allocation {
                    lot_id: late,
                    points: Points(70)
                },
            ]
        );
        assert_eq!(lots.total(), Points(100));
        assert!(lots.contains(never));
    }

    #[test]
    fn pending_points_cannot_be_spent() {
        let mut lots = Lots::default();
        lots.credit(Points(100), lot(0, 7, None));
        assert_eq!(lots.available(at(3)), Points::ZERO);
        assert_eq!(lots.pending(at(3)), Points(100));
        assert_eq!(
            lots.spend(Points(1), at(3)),
            Err(Insufficient {
                available: Points::ZERO
            })
        );
        assert!(lots.spend(Points(100), at(7)).is_ok());
    }

    #[test]
    fn clawback_beyond_balance_leaves_debt_that_earnings_repay() {
        let mut lots = Lots::default();
        let own = lots.credit(Points(20), lot(0, 0, None)).unwrap();
        lots.spend(Points(15), at(1)).unwrap();
        let allocations = lots.claw_back(Points(20), Some(own), at(2), lot(2, 2, None));
        assert_eq!(
            allocations.iter().map(|a| a.points).sum::<Points>(),
            Points(20)
        );
        assert_eq!(lots.total(), Points(-15));
        assert_eq!(lots.debt(), Points(15));
        assert!(lots.credit(Points(10), lot(3, 3, None)).is_none());
        assert_eq!(lots.total(), Points(-5));
        lots.credit(Points(10), lot(4, 4, None)).unwrap();
        assert_eq!(lots.total(), Points(5));
        assert_eq!(lots.debt(), Points::ZERO);
    }

    #[test]
    fn restore_returns_points_to_their_lots() {
        let mut lots = Lots::default();
        let first = lots.credit(Points(30), lot(0, 0, Some(30))).unwrap();
        let allocations = lots.spend(Points(30), at(1)).unwrap();
        let snapshot: Vec<Lot> = lots.iter().cloned().collect();
        lots.clear_changed();
        assert!(!lots.contains(first));
        assert_eq!(lots.restore(&allocations), Err(first));
        for lot in snapshot {
            lots.insert_loaded(lot);
        }
        lots.restore(&allocations).unwrap();
        let restored = lots.iter().find(|lot| lot.id == first).unwrap();
        assert_eq!(restored.remaining, Points(30));
        assert_eq!(restored.expires_at, Some(at(30)));
    }

    #[test]
    fn expiry_empties_only_expired_lots() {
        let mut lots = Lots::default();
        lots.credit(Points(30), lot(0, 0, Some(30)));
        lots.credit(Points(40), lot(0, 0, Some(60)));
        let expired = lots.expire(at(30));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].points, Points(30));
        assert_eq!(lots.total(), Points(40));
        assert_eq!(lots.expiring_by(at(30), at(60)), Points(40));
    }
}
