//! A set of member rows as one bit per row.

/// One bit per row of a [`super::Table`]: set when the row is in the set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bits {
    words: Vec<u64>,
    len: usize,
}

impl Bits {
    /// No row of `len` set.
    pub fn none(len: usize) -> Bits {
        Bits {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Every row of `len` set.
    pub fn all(len: usize) -> Bits {
        let mut bits = Bits {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
        };
        bits.clear_tail();
        bits
    }

    /// The rows for which `test` holds, 64 at a time (the loop the compiler vectorises).
    pub fn from_fn(len: usize, test: impl Fn(usize) -> bool) -> Bits {
        let mut words = Vec::with_capacity(len.div_ceil(64));
        let mut start = 0;
        while start < len {
            let end = (start + 64).min(len);
            let mut word = 0u64;
            for row in start..end {
                word |= u64::from(test(row)) << (row - start);
            }
            words.push(word);
            start = end;
        }
        Bits { words, len }
    }

    /// The rows whose value in `column` passes `test`, for a column of plain values.
    pub fn of_column<T: Copy>(column: &[T], test: impl Fn(T) -> bool) -> Bits {
        let mut words = Vec::with_capacity(column.len().div_ceil(64));
        for chunk in column.chunks(64) {
            let mut word = 0u64;
            for (offset, value) in chunk.iter().enumerate() {
                word |= u64::from(test(*value)) << offset;
            }
            words.push(word);
        }
        Bits {
            words,
            len: column.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, row: usize) -> bool {
        row < self.len && self.words[row / 64] & (1 << (row % 64)) != 0
    }

    pub fn set(&mut self, row: usize, value: bool) {
        if row >= self.len {
            self.len = row + 1;
            self.words.resize(self.len.div_ceil(64), 0);
        }
        let bit = 1u64 << (row % 64);
        if value {
            self.words[row / 64] |= bit;
        } else {
            self.words[row / 64] &= !bit;
        }
    }

    /// How many rows are set.
    pub fn count(&self) -> usize {
        self.words
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum()
    }

    pub fn and(mut self, other: &Bits) -> Bits {
        self.align(other.len);
        for (word, theirs) in self.words.iter_mut().zip(&other.words) {
            *word &= theirs;
        }
        for word in self.words.iter_mut().skip(other.words.len()) {
            *word = 0;
        }
        self
    }

    pub fn or(mut self, other: &Bits) -> Bits {
        self.align(other.len);
        for (word, theirs) in self.words.iter_mut().zip(&other.words) {
            *word |= theirs;
        }
        self
    }

    pub fn inverted(mut self) -> Bits {
        for word in &mut self.words {
            *word = !*word;
        }
        self.clear_tail();
        self
    }

    /// The rows set here and not in `other`.
    pub fn minus(self, other: &Bits) -> Bits {
        let len = self.len.max(other.len);
        let mut other = other.clone();
        other.align(len);
        self.and(&other.inverted())
    }

    /// The rows set, in order.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(index, word)| {
            let mut rest = *word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    index * 64 + bit
                })
            })
        })
    }

    fn align(&mut self, len: usize) {
        if len > self.len {
            self.len = len;
            self.words.resize(len.div_ceil(64), 0);
        }
    }

    fn clear_tail(&mut self) {
        if !self.len.is_multiple_of(64) {
            if let Some(last) = self.words.last_mut() {
                *last &= (1u64 << (self.len % 64)) - 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_combine_and_count() {
        let even = Bits::from_fn(130, |row| row % 2 == 0);
        let thirds = Bits::of_column(&(0..130).collect::<Vec<_>>(), |row| row % 3 == 0);
        assert_eq!(even.count(), 65);
        assert_eq!(thirds.count(), 44);
        assert_eq!(even.clone().and(&thirds).count(), 22);
        assert_eq!(even.clone().or(&thirds).count(), 65 + 44 - 22);
        assert_eq!(even.clone().inverted().count(), 65);
        assert_eq!(Bits::all(130).count(), 130);
        assert_eq!(even.clone().minus(&thirds).count(), 43);
        let ones: Vec<usize> = even.ones().take(3).collect();
        assert_eq!(ones, vec![0, 2, 4]);
        assert_eq!(even.ones().last(), Some(128));
    }

    #[test]
    fn a_set_grows_to_a_new_row() {
        let mut bits = Bits::none(3);
        bits.set(70, true);
        assert_eq!(bits.len(), 71);
        assert!(bits.get(70));
        assert!(!bits.get(69));
        assert_eq!(Bits::none(3).or(&bits).count(), 1);
    }
}
