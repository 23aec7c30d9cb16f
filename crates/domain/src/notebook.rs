//! Notebooks: the hierarchical, shareable folders documents live in.

use serde::{Deserialize, Serialize};

use crate::activity::ChangeRecord;
use crate::compliance::ComplianceSettings;
use crate::id::{NotebookId, UserId};
use crate::time::Timestamp;
use crate::{StoreError, ValidationError};

/// Listings walk notebooks by id, newest (default) or oldest first.
pub use crate::page::SortOrder;

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
        // Lengths count the text as sent, as the OpenAPI document's `maxLength` does.
        let too_long = text.chars().count() > Self::MAX_CHARS;
        let text = text.trim();
        if text.is_empty() {
            return Err(ValidationError::new("name", "must not be empty"));
        }
        if too_long {
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
        let too_long = text.chars().count() > 64;
        let text = text.trim();
        if text.is_empty() || too_long {
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

/// A notebook as stored, with its owner (the `OWNS` relationship). Serialisable for
/// the read cache only; the API has its own representation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub fn check_version(&self, expected: Option<u64>) -> Result<(), StoreError> {
        check_version(self.version, expected)
    }

    /// The read-modify-write of an update, on the state read under the node's lock:
    /// checks the expected version, applies the patch `patch_of` makes from the current
    /// state (so relative changes, such as adding tags, apply to what is stored) and
    /// returns the change's record.
    pub fn update(
        &mut self,
        expected_version: Option<u64>,
        patch_of: impl FnOnce(&Notebook) -> Result<NotebookPatch, StoreError>,
        at: Timestamp,
    ) -> Result<ChangeRecord, StoreError> {
        self.check_version(expected_version)?;
        let patch = patch_of(self)?;
        let record = ChangeRecord::notebook_updated(self.id, &patch);
        self.apply_patch(patch, at);
        Ok(record)
    }

    /// Applies a patch in memory: every field it sets, and a new version at `at`.
    pub fn apply_patch(&mut self, patch: NotebookPatch, at: Timestamp) {
        if let Some(name) = patch.name {
            self.name = name;
        }
        if let Some(description) = patch.description {
            self.description = description;
        }
        if let Some(visibility) = patch.visibility {
            self.visibility = visibility;
        }
        if let Some(status) = patch.status {
            self.status = status;
        }
        if let Some(tags) = patch.tags {
            self.tags = tags;
        }
        if let Some(settings) = patch.compliance_settings {
            self.compliance_settings = settings;
        }
        if let Some(is_template) = patch.is_template {
            self.is_template = is_template;
        }
        self.touch(at);
    }

    /// What restoring a soft-deleted notebook changes.
    pub fn restore(&mut self, at: Timestamp) {
        self.status = NotebookStatus::Active;
        self.touch(at);
    }

    /// Every change sets `updated_at` and increments the version.
    fn touch(&mut self, at: Timestamp) {
        self.updated_at = at;
        self.version += 1;
    }

    /// The text the full-text indexes search for this notebook.
    pub fn search_text(&self) -> String {
        search_text(&self.name, self.description.as_ref(), &self.tags)
    }
}

/// `Conflict("version")` when a client expected another version than `current`.
pub fn check_version(current: u64, expected: Option<u64>) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != current => Err(StoreError::Conflict("version".into())),
        _ => Ok(()),
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

impl NewNotebook {
    /// The notebook as created: active, at version 1, with nothing in it.
    pub fn into_notebook(self) -> Notebook {
        Notebook {
            id: self.id,
            owner_id: self.owner_id,
            parent_id: self.parent_id,
            name: self.name,
            description: self.description,
            visibility: self.visibility,
            status: NotebookStatus::Active,
            tags: self.tags,
            compliance_settings: self.compliance_settings,
            document_count: 0,
            total_size_bytes: 0,
            created_at: self.created_at,
            updated_at: self.created_at,
            version: 1,
            is_template: self.is_template,
        }
    }

    /// The text the full-text indexes search for this notebook.
    pub fn search_text(&self) -> String {
        search_text(&self.name, self.description.as_ref(), &self.tags)
    }

    /// The record of the creation.
    pub fn record(&self) -> ChangeRecord {
        ChangeRecord::notebook_created(self.id, &self.name, self.parent_id)
    }
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
    pub fn patch_for(&self, current: &Notebook) -> Result<NotebookPatch, StoreError> {
        let mut patch = NotebookPatch::default();
        match self {
            BulkAction::Tag(tags) => {
                let mut merged = current.tags.clone();
                merged.extend(tags.iter().filter(|tag| !current.tags.contains(tag)).cloned());
                if merged.len() > Tag::MAX_PER_NOTEBOOK {
                    return Err(StoreError::Conflict("tags".into()));
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

// ---------------------------------------------------------------------------------------------
// The hierarchy (`PARENT_OF`): depth, cycles, deletion, restoration, duplication
// ---------------------------------------------------------------------------------------------

/// A tree may be `max_depth` levels deep (a root is at depth 1). A subtree `height`
/// levels tall (1 for a single notebook) placed under a parent at depth `parent_depth`
/// (0 for no parent) must fit: `Conflict("depth")` otherwise.
pub fn check_depth(parent_depth: u64, height: u64, max_depth: u32) -> Result<(), StoreError> {
    if parent_depth.saturating_add(height) > u64::from(max_depth) {
        Err(StoreError::Conflict("depth".into()))
    } else {
        Ok(())
    }
}

/// A notebook cannot move under itself or one of its descendants: `Conflict("cycle")`
/// when the new parent's ancestor chain (the parent included) holds `moved`.
pub fn check_no_cycle(moved: NotebookId, parent_chain: &[NotebookId]) -> Result<(), StoreError> {
    if parent_chain.contains(&moved) { Err(StoreError::Conflict("cycle".into())) } else { Ok(()) }
}

/// A notebook with live children is deleted only with its subtree (`cascade`):
/// `Conflict("children")` otherwise.
pub fn check_delete(live_children: u64, cascade: bool) -> Result<(), StoreError> {
    if live_children > 0 && !cascade { Err(StoreError::Conflict("children".into())) } else { Ok(()) }
}

/// A notebook comes back only under a live parent (or none): `Conflict("parent")` when
/// its parent is deleted.
pub fn check_restore(parent_deleted: bool) -> Result<(), StoreError> {
    if parent_deleted { Err(StoreError::Conflict("parent".into())) } else { Ok(()) }
}

/// One notebook of a duplicated subtree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotebookCopy {
    /// The notebook copied.
    pub source: NotebookId,
    /// The new notebook's id.
    pub copy: NotebookId,
    /// Where the copy goes: the copy of its source's parent, or, for the subtree's
    /// root, the parent the caller chose.
    pub parent: Option<NotebookId>,
}

/// Plans the copy of a live subtree, given as `(notebook, its parent)` pairs with
/// parents before children and `None` as the root's parent. Copies get new ids; the
/// root's copy goes under `new_parent`, every other copy under its parent's copy.
pub fn plan_copies(subtree: &[(NotebookId, Option<NotebookId>)], new_parent: Option<NotebookId>) -> Vec<NotebookCopy> {
    let mut copy_of = std::collections::HashMap::with_capacity(subtree.len());
    let mut copies = Vec::with_capacity(subtree.len());
    for &(source, parent) in subtree {
        let parent = match parent {
            None => new_parent,
            Some(parent) => copy_of.get(&parent).copied(),
        };
        let copy = NotebookId::new();
        copy_of.insert(source, copy);
        copies.push(NotebookCopy { source, copy, parent });
    }
    copies
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

/// A notebook's name, description and tags, a line each: what search shows of it.
pub fn heading(name: &NotebookName, description: Option<&Description>, tags: &[Tag]) -> String {
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

/// The text Neo4j's full-text index searches: the words of the [`heading`] (see
/// [`crate::words::index_words`]).
pub fn search_text(name: &NotebookName, description: Option<&Description>, tags: &[Tag]) -> String {
    crate::words::index_words(&heading(name, description, tags))
}

/// The records of notebook changes, written with them (see `crate::activity`).
impl ChangeRecord {
    /// A notebook was created, at the root or under `parent`.
    pub fn notebook_created(id: NotebookId, name: &NotebookName, parent: Option<NotebookId>) -> Self {
        let record = Self::new(id, "created", "create").with("name", name.as_str());
        match parent {
            Some(parent) => record.with("parent_id", parent.to_string()),
            None => record,
        }
    }

    /// A subtree was duplicated: `root` is the copy of `source`, named `name`, and
    /// `copied` notebooks were copied in all.
    pub fn notebook_duplicated(root: NotebookId, name: &NotebookName, source: NotebookId, copied: usize) -> Self {
        Self::new(root, "created", "create")
            .with("name", name.as_str())
            .with("duplicated_from", source.to_string())
            .with("notebooks_copied", copied)
    }

    /// A notebook's fields changed, as `patch` says.
    pub fn notebook_updated(id: NotebookId, patch: &NotebookPatch) -> Self {
        Self::new(id, "updated", "update").with("fields", changed_fields(patch))
    }

    /// A notebook moved under `new_parent` (or to the root).
    pub fn notebook_moved(id: NotebookId, new_parent: Option<NotebookId>) -> Self {
        Self::new(id, "moved", "update").with("parent_id", new_parent.map(|parent| parent.to_string()))
    }

    /// A notebook (with `cascade`, its subtree) was soft-deleted.
    pub fn notebook_deleted(id: NotebookId, cascade: bool) -> Self {
        Self::new(id, "deleted", "delete").with("cascade", cascade)
    }

    pub fn notebook_restored(id: NotebookId) -> Self {
        Self::new(id, "restored", "restore")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_the_text_as_sent() {
        // The OpenAPI document's maxLength counts surrounding blanks too.
        let name = "a".repeat(NotebookName::MAX_CHARS);
        assert!(NotebookName::parse(&name).is_ok());
        assert!(NotebookName::parse(&format!("  {name}  ")).is_err());
        assert!(Tag::parse(&format!(" {}", "t".repeat(64))).is_err());
        assert!(Tag::parse(&"t".repeat(64)).is_ok());
    }

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

    fn notebook(tags: &[&str]) -> Notebook {
        NewNotebook {
            id: NotebookId::new(),
            owner_id: UserId::new(),
            parent_id: None,
            name: NotebookName::parse("Research").expect("valid"),
            description: None,
            visibility: Visibility::Private,
            tags: Tag::parse_list(tags).expect("valid"),
            compliance_settings: ComplianceSettings::default(),
            is_template: false,
            created_at: crate::time::now(),
        }
        .into_notebook()
    }

    fn later(notebook: &Notebook) -> Timestamp {
        crate::time::after(notebook.updated_at, std::time::Duration::from_secs(1))
    }

    #[test]
    fn a_new_notebook_is_active_empty_and_at_version_one() {
        let created = notebook(&["law"]);
        assert_eq!((created.status, created.version, created.document_count), (NotebookStatus::Active, 1, 0));
        assert_eq!((created.total_size_bytes, created.updated_at), (0, created.created_at));
        assert_eq!(created.search_text(), "research law");
    }

    #[test]
    fn a_patch_changes_what_it_sets_and_bumps_the_version() {
        let mut notebook = notebook(&["law"]);
        let at = later(&notebook);
        let patch = NotebookPatch {
            description: Some(Some(Description::parse("notes").expect("valid"))),
            status: Some(NotebookStatus::Archived),
            ..NotebookPatch::default()
        };
        notebook.apply_patch(patch, at);
        assert_eq!(notebook.description.as_ref().map(Description::as_str), Some("notes"));
        assert_eq!((notebook.status, notebook.version, notebook.updated_at), (NotebookStatus::Archived, 2, at));
        assert_eq!((notebook.name.as_str(), notebook.tags.len()), ("Research", 1), "untouched fields stay");
    }

    #[test]
    fn an_update_checks_the_version_and_patches_the_current_state() {
        let mut notebook = notebook(&["law"]);
        let at = later(&notebook);
        let stale = notebook.update(Some(7), |_| Ok(NotebookPatch::default()), at);
        assert!(matches!(stale, Err(StoreError::Conflict(rule)) if rule == "version"));
        assert_eq!(notebook.version, 1, "a refused update changes nothing");
        let add_tax = BulkAction::Tag(vec![Tag::parse("tax").expect("valid")]);
        let record = notebook.update(Some(1), |current| add_tax.patch_for(current), at).expect("current version");
        assert_eq!(notebook.tags.iter().map(Tag::as_str).collect::<Vec<_>>(), ["law", "tax"]);
        assert_eq!((record.event_type, record.action), ("updated", "update"));
        assert_eq!(record.details["fields"], serde_json::json!(["tags"]));
    }

    #[test]
    fn restoring_reactivates_and_bumps_the_version() {
        let mut notebook = notebook(&[]);
        notebook.status = NotebookStatus::Deleted;
        let at = later(&notebook);
        notebook.restore(at);
        assert_eq!((notebook.status, notebook.version, notebook.updated_at), (NotebookStatus::Active, 2, at));
    }

    fn conflict(result: Result<(), StoreError>) -> Option<String> {
        match result {
            Err(StoreError::Conflict(rule)) => Some(rule),
            _ => None,
        }
    }

    #[test]
    fn subtrees_must_fit_within_the_maximum_depth() {
        assert!(check_depth(0, 1, 1).is_ok(), "a root in a one-level tree");
        assert!(check_depth(2, 3, 5).is_ok());
        assert_eq!(conflict(check_depth(3, 3, 5)).as_deref(), Some("depth"));
        assert_eq!(conflict(check_depth(u64::MAX, 1, 5)).as_deref(), Some("depth"), "no overflow");
    }

    #[test]
    fn a_notebook_cannot_move_under_itself_or_a_descendant() {
        let (moved, other) = (NotebookId::new(), NotebookId::new());
        assert!(check_no_cycle(moved, &[other]).is_ok());
        assert_eq!(conflict(check_no_cycle(moved, &[other, moved])).as_deref(), Some("cycle"));
        assert_eq!(conflict(check_no_cycle(moved, &[moved])).as_deref(), Some("cycle"), "under itself");
    }

    #[test]
    fn live_children_need_a_cascade_and_a_restore_a_live_parent() {
        assert!(check_delete(0, false).is_ok() && check_delete(2, true).is_ok());
        assert_eq!(conflict(check_delete(1, false)).as_deref(), Some("children"));
        assert!(check_restore(false).is_ok());
        assert_eq!(conflict(check_restore(true)).as_deref(), Some("parent"));
    }

    #[test]
    fn copies_keep_the_shape_of_the_subtree() {
        let (root, child, grandchild, target) =
            (NotebookId::new(), NotebookId::new(), NotebookId::new(), NotebookId::new());
        let plan = plan_copies(&[(root, None), (child, Some(root)), (grandchild, Some(child))], Some(target));
        assert_eq!(plan.iter().map(|copy| copy.source).collect::<Vec<_>>(), [root, child, grandchild]);
        assert_eq!(plan[0].parent, Some(target), "the root's copy goes where the caller says");
        assert_eq!(plan[1].parent, Some(plan[0].copy));
        assert_eq!(plan[2].parent, Some(plan[1].copy));
        assert!(plan.iter().all(|copy| ![root, child, grandchild].contains(&copy.copy)), "fresh ids");
        assert_eq!(plan_copies(&[(root, None)], None)[0].parent, None);
    }

    #[test]
    fn visibility_parses_the_design_values() {
        assert_eq!(Visibility::parse("shared"), Ok(Visibility::Shared));
        assert!(Visibility::parse("secret").is_err());
    }

    #[test]
    fn notebook_records_name_what_changed() {
        let (id, parent) = (NotebookId::new(), NotebookId::new());
        let name = NotebookName::parse("Research").expect("valid");
        let created = ChangeRecord::notebook_created(id, &name, Some(parent));
        assert_eq!((created.event_type, created.action), ("created", "create"));
        assert_eq!(created.details["parent_id"], parent.to_string());
        assert!(!ChangeRecord::notebook_created(id, &name, None).details.contains_key("parent_id"));
        let patch = NotebookPatch { status: Some(NotebookStatus::Archived), ..NotebookPatch::default() };
        assert_eq!(ChangeRecord::notebook_updated(id, &patch).details["fields"], serde_json::json!(["status"]));
        let moved = ChangeRecord::notebook_moved(id, None);
        assert_eq!(
            (moved.event_type, moved.action, &moved.details["parent_id"]),
            ("moved", "update", &serde_json::Value::Null)
        );
        assert_eq!(ChangeRecord::notebook_deleted(id, true).details["cascade"], true);
        assert_eq!(ChangeRecord::notebook_restored(id).action, "restore");
        let copy = ChangeRecord::notebook_duplicated(id, &name, parent, 3);
        assert_eq!(
            (copy.details["duplicated_from"].as_str(), &copy.details["notebooks_copied"]),
            (Some(parent.to_string().as_str()), &serde_json::json!(3))
        );
    }
}
