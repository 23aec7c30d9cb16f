//! Cursor pagination. Stores page by id, which (UUID v7) is creation order; the
//! newest entries come first.

use uuid::Uuid;

use crate::ValidationError;

/// How many items a page holds: 1–100, 20 when the client does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    pub const DEFAULT: Limit = Limit(20);
    pub const MAX: u32 = 100;

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

/// A page request: at most `limit` items strictly older than `after` (the id of the
/// last item of the previous page), or the newest items when `after` is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: Limit,
    pub after: Option<Uuid>,
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
}
