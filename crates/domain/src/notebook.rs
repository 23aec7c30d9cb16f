//! Notebooks: the hierarchical, shareable folders documents live in.

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::compliance::ComplianceSettings;
use crate::id::{NotebookId, UserId};
use crate::time::Timestamp;

fn has_control_chars(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

/// A notebook's display name: 1–200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NotebookName(String);

impl NotebookName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ValidationError::new("name", "must not be empty"));
        }
        if text.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new("name", format!("must be at most {} characters", Self::MAX_CHARS)));
        }
        if text.chars().any(char::is_control) {
            return Err(ValidationError::new("name", "must not contain control characters"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A free-text description of at most 10 000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 10_000;

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        if text.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new("description", format!("must be at most {} characters", Self::MAX_CHARS)));
        }
        if has_control_chars(text) {
            return Err(ValidationError::new("description", "must not contain control characters"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tag name: 1–64 characters, no control characters, stored in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tag(String);

impl Tag {
    pub const MAX_PER_NOTEBOOK: usize = 50;

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 64 {
            return Err(ValidationError::new("tags", "each tag must be 1 to 64 characters"));
        }
        if text.chars().any(char::is_control) {
            return Err(ValidationError::new("tags", "tags must not contain control characters"));
        }
        Ok(Self(text.to_lowercase()))
    }

    /// Parses a list of tags, dropping duplicates while keeping first-seen order.
    ///
    /// The list's length is checked before any tag is parsed, so the work is bounded by
    /// `MAX_PER_NOTEBOOK` whatever the caller sends (a list of 100,000 tags once cost 22 s of
    /// CPU here). A list that reaches the limit only through duplicates is refused too: a
    /// client sending more tags than a notebook can hold has made a mistake worth reporting.
    pub fn parse_list<S: AsRef<str>>(texts: &[S]) -> Result<Vec<Self>, ValidationError> {
        if texts.len() > Self::MAX_PER_NOTEBOOK {
            return Err(ValidationError::new("tags", format!("at most {} tags", Self::MAX_PER_NOTEBOOK)));
        }
        let mut seen = std::collections::HashSet::with_capacity(texts.len());
        let mut tags: Vec<Tag> = Vec::with_capacity(texts.len());
        for text in texts {
            let tag = Tag::parse(text.as_ref())?;
            if seen.insert(tag.clone()) {
                tags.push(tag);
            }
        }
        Ok(tags)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Private,
    Shared,
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Shared => "shared",
            Visibility::Public => "public",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text {
            "private" => Ok(Visibility::Private),
            "shared" => Ok(Visibility::Shared),
            "public" => Ok(Visibility::Public),
            _ => Err(ValidationError::new("visibility", "must be private, shared or public")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotebookStatus {
    Active,
    Archived,
    /// Soft-deleted: invisible to every read, kept so that nothing is lost by mistake.
    Deleted,
}

impl NotebookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NotebookStatus::Active => "active",
            NotebookStatus::Archived => "archived",
            NotebookStatus::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text {
            "active" => Ok(NotebookStatus::Active),
            "archived" => Ok(NotebookStatus::Archived),
            "deleted" => Ok(NotebookStatus::Deleted),
            _ => Err(ValidationError::new("status", "must be active or archived")),
        }
    }
}

/// A notebook as stored, with its owner (the `OWNS` relationship).
#[derive(Debug, Clone, PartialEq)]
pub struct Notebook {
    pub id: NotebookId,
    pub owner_id: UserId,
    /// The notebook this one sits in (`(parent)-[:PARENT_OF]->(this)`); `None` for a root.
    pub parent_id: Option<NotebookId>,
    pub name: NotebookName,
    pub description: Option<Description>,
    pub visibility: Visibility,
    pub status: NotebookStatus,
    pub tags: Vec<Tag>,
    pub compliance_settings: ComplianceSettings,
    pub document_count: u64,
    pub total_size_bytes: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Incremented by every change; the API's `ETag`, checked against `If-Match`.
    pub version: u64,
    /// A template: a tree others copy (duplicate) to start from. Copies are never
    /// templates themselves.
    pub is_template: bool,
}

impl Notebook {
    /// The optimistic-concurrency check every store applies under the node's lock:
    /// `Conflict("version")` when the client's expected version is stale.
    pub fn check_version(&self, expected: Option<u64>) -> Result<(), crate::StoreError> {
        match expected {
            Some(expected) if expected != self.version => Err(crate::StoreError::Conflict("version".into())),
            _ => Ok(()),
        }
    }
}

/// Everything needed to create a notebook owned by `owner_id`.
#[derive(Debug, Clone)]
pub struct NewNotebook {
    pub id: NotebookId,
    pub owner_id: UserId,
    pub parent_id: Option<NotebookId>,
    pub name: NotebookName,
    pub description: Option<Description>,
    pub visibility: Visibility,
    pub tags: Vec<Tag>,
    pub compliance_settings: ComplianceSettings,
    pub is_template: bool,
    pub created_at: Timestamp,
}

/// A partial update. `None` leaves a field unchanged; `description: Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotebookPatch {
    pub name: Option<NotebookName>,
    pub description: Option<Option<Description>>,
    pub visibility: Option<Visibility>,
    pub status: Option<NotebookStatus>,
    pub tags: Option<Vec<Tag>>,
    pub compliance_settings: Option<ComplianceSettings>,
    pub is_template: Option<bool>,
}

impl NotebookPatch {
    pub fn is_empty(&self) -> bool {
        *self == NotebookPatch::default()
    }
}

/// One action applied to several notebooks at once, all or nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkAction {
    /// Move under `parent` (or to the root).
    Move {
        parent: Option<NotebookId>,
    },
    /// Add these tags to each notebook's own.
    Tag(Vec<Tag>),
    /// Remove these tags where present.
    Untag(Vec<Tag>),
    Archive,
    Unarchive,
    /// Soft-delete; with `cascade`, subtrees too.
    Delete {
        cascade: bool,
    },
}

impl BulkAction {
    /// The patch this action makes to `current` (not for `Move` and `Delete`, which
    /// are structural). `Conflict("tags")` when a notebook would carry too many tags.
    pub fn patch_for(&self, current: &Notebook) -> Result<NotebookPatch, crate::StoreError> {
        let mut patch = NotebookPatch::default();
        match self {
            BulkAction::Tag(tags) => {
                let mut merged = current.tags.clone();
                merged.extend(tags.iter().filter(|tag| !current.tags.contains(tag)).cloned());
                if merged.len() > Tag::MAX_PER_NOTEBOOK {
                    return Err(crate::StoreError::Conflict("tags".into()));
                }
                patch.tags = Some(merged);
            }
            BulkAction::Untag(tags) => {
                patch.tags = Some(current.tags.iter().filter(|tag| !tags.contains(tag)).cloned().collect());
            }
            BulkAction::Archive => patch.status = Some(NotebookStatus::Archived),
            BulkAction::Unarchive => patch.status = Some(NotebookStatus::Active),
            BulkAction::Move { .. } | BulkAction::Delete { .. } => {}
        }
        Ok(patch)
    }
}

/// The names of the fields a patch changes, for the activity record.
pub fn changed_fields(patch: &NotebookPatch) -> Vec<&'static str> {
    [
        ("name", patch.name.is_some()),
        ("description", patch.description.is_some()),
        ("visibility", patch.visibility.is_some()),
        ("status", patch.status.is_some()),
        ("tags", patch.tags.is_some()),
        ("compliance_settings", patch.compliance_settings.is_some()),
        ("is_template", patch.is_template.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// Which notebooks a listing covers, and for whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListScope {
    /// Notebooks the user owns.
    Owned(UserId),
    /// Notebooks others shared with the user: an active grant on them or an ancestor.
    SharedWith(UserId),
    /// Every public notebook.
    Public,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    NewestFirst,
    OldestFirst,
}

/// A notebook listing: a scope, optional filters, an order and a page. Deleted
/// notebooks are never listed.
#[derive(Debug, Clone, PartialEq)]
pub struct NotebookQuery {
    pub scope: ListScope,
    pub status: Option<NotebookStatus>,
    pub visibility: Option<Visibility>,
    pub tag: Option<Tag>,
    /// Only templates (`Some(true)`) or only non-templates (`Some(false)`).
    pub template: Option<bool>,
    pub order: SortOrder,
    pub page: crate::page::PageRequest,
}

impl NotebookQuery {
    pub fn new(scope: ListScope, page: crate::page::PageRequest) -> Self {
        Self { scope, status: None, visibility: None, tag: None, template: None, order: SortOrder::default(), page }
    }
}

/// The text the full-text indexes search: name, description and tags together.
pub fn search_text(name: &NotebookName, description: Option<&Description>, tags: &[Tag]) -> String {
    let mut text = name.as_str().to_owned();
    if let Some(description) = description {
        text.push('\n');
        text.push_str(description.as_str());
    }
    for tag in tags {
        text.push('\n');
        text.push_str(tag.as_str());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(NotebookName::parse("  Research ").map(|n| n.0), Ok("Research".to_owned()));
        assert_eq!(NotebookName::parse("   ").unwrap_err().field, "name");
        assert!(NotebookName::parse(&"n".repeat(201)).is_err());
        assert!(NotebookName::parse("bad\u{0}name").is_err());
    }

    #[test]
    fn tags_are_deduplicated_case_insensitively() {
        let tags = Tag::parse_list(&["Law", "law", "tax"]).expect("valid");
        assert_eq!(tags.iter().map(Tag::as_str).collect::<Vec<_>>(), ["law", "tax"]);
        assert!(Tag::parse_list(&(0..51).map(|i| i.to_string()).collect::<Vec<_>>()).is_err());
    }

    #[test]
    fn a_tag_list_is_bounded_before_it_is_parsed() {
        // 100,000 copies of one tag deduplicate to one, but must be refused by their count:
        // parsing them first is the work an attacker wants the server to do.
        let copies = vec!["same"; 100_000];
        assert_eq!(Tag::parse_list(&copies).unwrap_err().field, "tags");
        let distinct: Vec<String> = (0..100_000).map(|i| format!("tag{i}")).collect();
        assert!(Tag::parse_list(&distinct).is_err());
        assert_eq!(Tag::parse_list(&vec!["x"; 50]).map(|tags| tags.len()), Ok(1));
    }

    #[test]
    fn visibility_parses_the_design_values() {
        assert_eq!(Visibility::parse("shared"), Ok(Visibility::Shared));
        assert!(Visibility::parse("secret").is_err());
    }
}
