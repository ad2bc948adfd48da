//! A tenant's members as columns, one per field, which a compiled condition reads a column at
//! a time. Text is kept as codes into a dictionary per field, so a text test is decided once
//! per distinct value.

use super::fields::{
    rfm_cell_of, Base, BoolField, Facts, IntField, Profile, RfmCutoffs, Scalar, TextField,
};
use super::Bits;
use crate::MemberId;
use std::collections::{BTreeMap, HashMap};

/// A missing whole number in a column.
pub const NULL: i64 = i64::MIN;
/// A missing text in a column.
const NO_TEXT: u32 = u32::MAX;

/// Distinct values of one text field, each with its code.
#[derive(Default)]
struct Dictionary {
    values: Vec<String>,
    codes: HashMap<String, u32>,
}

impl Dictionary {
    fn code(&mut self, value: Option<&str>) -> u32 {
        let Some(value) = value else {
            return NO_TEXT;
        };
        if let Some(code) = self.codes.get(value) {
            return *code;
        }
        let code = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        self.values.push(value.to_owned());
        self.codes.insert(value.to_owned(), code);
        code
    }

    fn value(&self, code: u32) -> Option<&str> {
        self.values.get(code as usize).map(String::as_str)
    }
}

/// A tenant's members on one day, as columns.
pub struct Table {
    today: i64,
    rfm: RfmCutoffs,
    ids: Vec<MemberId>,
    rows: HashMap<MemberId, usize>,
    live: Bits,
    ints: Vec<Vec<i64>>,
    bases: Vec<Base>,
    dictionaries: Vec<Dictionary>,
    texts: Vec<Vec<u32>>,
    bools: Vec<Bits>,
    tag_dictionary: Dictionary,
    tags: Vec<Box<[u32]>>,
    attributes: Vec<BTreeMap<String, Scalar>>,
}

impl Table {
    /// An empty table for local day `today`.
    pub fn new(today: i64, rfm: RfmCutoffs) -> Table {
        Table {
            today,
            rfm,
            ids: Vec::new(),
            rows: HashMap::new(),
            live: Bits::none(0),
            ints: IntField::ALL.iter().map(|_| Vec::new()).collect(),
            bases: Vec::new(),
            dictionaries: TextField::ALL
                .iter()
                .map(|_| Dictionary::default())
                .collect(),
            texts: TextField::ALL.iter().map(|_| Vec::new()).collect(),
            bools: BoolField::ALL.iter().map(|_| Bits::none(0)).collect(),
            tag_dictionary: Dictionary::default(),
            tags: Vec::new(),
            attributes: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Members in the table and not removed.
    pub fn members(&self) -> usize {
        self.live.count()
    }

    pub fn today(&self) -> i64 {
        self.today
    }

    pub fn rfm(&self) -> &RfmCutoffs {
        &self.rfm
    }

    /// The row of a member, if the table has it.
    pub fn row(&self, member: &MemberId) -> Option<usize> {
        self.rows.get(member).copied()
    }

    pub fn id(&self, row: usize) -> &MemberId {
        &self.ids[row]
    }

    /// Sets a member's row from their profile, adding the row if the member is new.
    pub fn upsert(&mut self, member: MemberId, profile: &Profile) -> usize {
        let facts = Facts::of(profile, self.today, &self.rfm);
        let row = match self.rows.get(&member) {
            Some(row) => *row,
            None => {
                let row = self.ids.len();
                self.ids.push(member);
                self.rows.insert(member, row);
                for column in &mut self.ints {
                    column.push(NULL);
                }
                self.bases.push(Base::default());
                for column in &mut self.texts {
                    column.push(NO_TEXT);
                }
                self.tags.push(Box::new([]));
                self.attributes.push(BTreeMap::new());
                row
            }
        };
        for (column, value) in self.ints.iter_mut().zip(facts.ints) {
            column[row] = value.unwrap_or(NULL);
        }
        self.bases[row] = Base::of(profile);
        for (index, value) in facts.texts.iter().enumerate() {
            self.texts[index][row] = self.dictionaries[index].code(value.as_deref());
        }
        for (index, value) in facts.bools.iter().enumerate() {
            self.bools[index].set(row, *value);
        }
        self.tags[row] = facts
            .tags
            .iter()
            .map(|tag| self.tag_dictionary.code(Some(tag)))
            .collect();
        self.attributes[row] = facts.attributes;
        self.live.set(row, true);
        row
    }

    /// Takes a member out (erased or merged away); their row stays, unset.
    pub fn remove(&mut self, member: &MemberId) {
        if let Some(row) = self.rows.get(member) {
            self.live.set(*row, false);
        }
    }

    /// Moves the table to local day `today` and new RFM cut-offs: re-derives the fields that
    /// follow the day and the scores.
    pub fn set_day(&mut self, today: i64, rfm: RfmCutoffs) {
        if today == self.today && rfm == self.rfm {
            return;
        }
        self.today = today;
        self.rfm = rfm;
        let cell = TextField::RfmCell as usize;
        let mut ints = [None; IntField::ALL.len()];
        for row in 0..self.len() {
            for (index, column) in self.ints.iter().enumerate() {
                ints[index] = Some(column[row]).filter(|value| *value != NULL);
            }
            self.bases[row].derive(&mut ints, today, &self.rfm);
            for (column, value) in self.ints.iter_mut().zip(ints) {
                column[row] = value.unwrap_or(NULL);
            }
            self.texts[cell][row] = self.dictionaries[cell].code(rfm_cell_of(&ints).as_deref());
        }
    }

    /// One member's fields as the table holds them.
    pub fn facts(&self, row: usize) -> Facts {
        let mut facts = Facts::default();
        for (index, column) in self.ints.iter().enumerate() {
            facts.ints[index] = Some(column[row]).filter(|value| *value != NULL);
        }
        for (index, column) in self.texts.iter().enumerate() {
            facts.texts[index] = self.dictionaries[index]
                .value(column[row])
                .map(str::to_owned);
        }
        for (index, bits) in self.bools.iter().enumerate() {
            facts.bools[index] = bits.get(row);
        }
        facts.tags = self.tags[row]
            .iter()
            .filter_map(|code| self.tag_dictionary.value(*code))
            .map(str::to_owned)
            .collect();
        facts.attributes = self.attributes[row].clone();
        facts
    }

    /// The rows of members in the table (not removed).
    pub fn live(&self) -> &Bits {
        &self.live
    }

    pub(crate) fn ints(&self, field: IntField) -> &[i64] {
        &self.ints[field as usize]
    }

    pub(crate) fn texts(&self, field: TextField) -> (&[String], &[u32]) {
        (
            &self.dictionaries[field as usize].values,
            &self.texts[field as usize],
        )
    }

    pub(crate) fn bools(&self, field: BoolField) -> &Bits {
        &self.bools[field as usize]
    }

    pub(crate) fn tag_code(&self, tag: &str) -> Option<u32> {
        self.tag_dictionary.codes.get(tag).copied()
    }

    pub(crate) fn tags(&self, row: usize) -> &[u32] {
        &self.tags[row]
    }

    pub(crate) fn attributes(&self, row: usize) -> &BTreeMap<String, Scalar> {
        &self.attributes[row]
    }
}
