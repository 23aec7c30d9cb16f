//! Cursor pagination. Stores page by id, which (UUID v7) is creation order; the
//! newest entries come first unless a listing says otherwise.
//!
//! Every listing is a keyset walk: the store seeks its index to the cursor and reads
//! `limit + 1` entries in the index's order, so a page costs the same however many
//! entries precede or follow it. Both stores keep ids as hyphenated lower-case
//! text, and compare them as text; [`PageRequest::bound`] gives them a bound to
//! compare with on every page, the first included, so that the comparison is
//! always an index range and never an `IS NULL OR …` that no index can serve.

use uuid::Uuid;

use crate::ValidationError;

/// How many items a page holds: 1–100, 20 when the client does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    pub const DEFAULT: Limit = Limit(20);
    pub const MAX: u32 = 100;
    /// The largest page, for use cases that read a listing whole.
    pub const LARGEST: Limit = Limit(Self::MAX);

    pub fn parse(value: i64) -> Result<Self, ValidationError> {
        if value < 1 || value > i64::from(Self::MAX) {
            return Err(ValidationError::new("limit", format!("must be between 1 and {}", Self::MAX)));
        }
        Ok(Self(value as u32))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Which way a listing walks its ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    NewestFirst,
    OldestFirst,
}

/// A page request: at most `limit` items that come strictly after `after` (the id of
/// the last item of the previous page) in the listing's order, or the first items
/// when `after` is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: Limit,
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// Sorts before every id's text: the first page of an oldest-first walk.
    const BEFORE_EVERY_ID: &'static str = "";
    /// Sorts after every id's text (`g` follows the hex digits and the hyphen): the
    /// first page of a newest-first walk.
    const AFTER_EVERY_ID: &'static str = "g";

    /// The exclusive bound of the page on ids stored as text: items are those with
    /// `id < bound` newest first, or `id > bound` oldest first. It is the cursor,
    /// or on the first page a text beyond every id in the walk's direction.
    pub fn bound(&self, order: SortOrder) -> String {
        match (self.after, order) {
            (Some(after), _) => after.hyphenated().to_string(),
            (None, SortOrder::NewestFirst) => Self::AFTER_EVERY_ID.to_owned(),
            (None, SortOrder::OldestFirst) => Self::BEFORE_EVERY_ID.to_owned(),
        }
    }

    /// The number of rows a store reads for the page: one more than it holds, which
    /// only proves that another page exists (see [`Page::from_overfetch`]).
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit.get()) + 1
    }
}

/// A page of results. `next_after` is the id to continue from, `None` on the last page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_after: Option<Uuid>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order: the extra row, if
    /// present, only proves that another page exists.
    pub fn from_overfetch(mut rows: Vec<T>, limit: Limit, id_of: impl Fn(&T) -> Uuid) -> Self {
        let limit = limit.get() as usize;
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_after = if has_more { rows.last().map(id_of) } else { None };
        Page { items: rows, next_after }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_after: self.next_after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_bounds() {
        assert!(Limit::parse(0).is_err());
        assert!(Limit::parse(101).is_err());
        assert_eq!(Limit::parse(100).map(Limit::get), Ok(100));
    }

    #[test]
    fn overfetch_sets_the_cursor_only_when_more_exist() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let limit = Limit::parse(2).expect("valid");
        let page = Page::from_overfetch(ids.clone(), limit, |id| *id);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_after, Some(ids[1]));
        let last = Page::from_overfetch(ids[..2].to_vec(), limit, |id| *id);
        assert_eq!(last.next_after, None);
    }

    #[test]
    fn first_page_bounds_lie_beyond_every_id() {
        let first = PageRequest::default();
        let newest = first.bound(SortOrder::NewestFirst);
        let oldest = first.bound(SortOrder::OldestFirst);
        for id in [Uuid::nil(), Uuid::max(), Uuid::now_v7()] {
            let text = id.hyphenated().to_string();
            assert!(text.as_str() < newest.as_str(), "{text} is not below {newest:?}");
            assert!(text.as_str() > oldest.as_str(), "{text} is not above {oldest:?}");
        }
        let after = Uuid::now_v7();
        let next = PageRequest { after: Some(after), ..first };
        assert_eq!(next.bound(SortOrder::NewestFirst), after.to_string());
        assert_eq!(next.bound(SortOrder::OldestFirst), after.to_string());
        assert_eq!(next.fetch(), 21);
    }
}
