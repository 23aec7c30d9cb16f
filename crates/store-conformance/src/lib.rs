//! The store conformance suite: one set of checks, run against every backend from
//! that backend's own tests. A behaviour exists only when every backend passes it.
//!
//! The checks never assume an empty database: they create uniquely named users and
//! only assert on what they created, so they can run against a shared Neo4j server
//! alongside other tests.
#![allow(clippy::unwrap_used)]

mod documents;
mod hierarchy;
mod identity;
mod notebooks;
mod paging;
mod related;
pub mod search;
mod sessions;
mod sharing;
mod users;

pub use hierarchy::*;
pub use notebooks::*;
pub use paging::*;
pub use sessions::*;
pub use sharing::*;
pub use users::*;

use std::collections::HashSet;

use aether_domain::StoreError;
use aether_domain::access::Collaboration;
use aether_domain::access::{CollaborationStatus, Permission};
use aether_domain::activity::Change;
use aether_domain::compliance::{ComplianceSettings, RedactionMode};
use aether_domain::id::{NotebookId, TokenFamilyId, UserId};
use aether_domain::notebook::{
    BulkAction, Description, ListScope, NewNotebook, NotebookName, NotebookPatch, NotebookQuery, NotebookStatus,
    SortOrder, Tag, Visibility,
};
use aether_domain::page::{Limit, PageRequest};
use aether_domain::session::{NewRefreshToken, RefreshOutcome};
use aether_domain::store::Store;
use aether_domain::time;
use aether_domain::user::{Email, NewUser, Role, UserPatch, UserStatus, Username};
use chrono::TimeDelta;
use uuid::Uuid;

/// Runs every check in turn, panicking with the check's name on the first failure.
pub async fn run_all(store: &dyn Store) {
    users_are_created_read_and_unique(store).await;
    users_are_updated_and_soft_deleted(store).await;
    users_page_newest_first(store).await;
    notebooks_round_trip_every_field(store).await;
    notebooks_need_an_existing_owner(store).await;
    owned_notebooks_page_with_cursors(store).await;
    notebooks_are_patched_and_soft_deleted(store).await;
    versions_guard_against_lost_updates(store).await;
    listings_filter_and_sort(store).await;
    deleted_notebooks_can_be_restored(store).await;
    every_change_is_recorded(store).await;
    notebooks_are_duplicated_deeply(store).await;
    bulk_updates_are_all_or_nothing(store).await;
    tags_are_counted_through_tagged_with(store).await;
    sharing_writes_an_event_to_the_outbox(store).await;
    refresh_tokens_rotate_once_and_detect_reuse(store).await;
    concurrent_rotation_spends_a_token_once(store).await;
    expired_refresh_tokens_are_refused_and_purged(store).await;
    notebooks_form_a_hierarchy(store).await;
    a_notebook_is_read_with_its_chain(store).await;
    moves_reject_cycles_and_excess_depth(store).await;
    deleting_a_parent_needs_cascade(store).await;
    collaborations_grant_along_the_hierarchy(store).await;
    identity::external_users_are_created_once_and_updated(store).await;
    identity::concurrent_first_syncs_create_one_user(store).await;
    identity::a_taken_username_is_a_conflict(store).await;
    identity::users_are_searched_by_name_email_and_full_name(store).await;
    identity::role_changes_are_audited(store).await;
    identity::the_last_administrator_keeps_the_role(store).await;
    identity::api_keys_are_created_listed_used_and_revoked(store).await;
    identity::ephemeral_entries_expire_and_are_taken_once(store).await;
    documents::upload_jobs_run_their_course(store).await;
    documents::reuploads_add_versions(store).await;
    documents::abandoned_jobs_queue_their_blobs(store).await;
    documents::leases_expire_and_uploads_go_stale(store).await;
    documents::deleting_a_document_queues_every_blob(store).await;
    notebook_listings_page_in_both_orders(store).await;
    records_of_changes_page_newest_first(store).await;
    api_keys_page_newest_first(store).await;
    collaborations_page_by_id(store).await;
    documents::documents_versions_and_jobs_page_newest_first(store).await;
    search::documents_are_found_by_words_phrases_prefixes_and_typos(store).await;
    search::only_the_readers_text_of_a_redacted_document_is_searched(store).await;
    search::search_finds_exactly_what_the_caller_may_read(store).await;
    search::search_results_filter_and_page(store).await;
    search::notebooks_are_found_by_name_description_and_tags(store).await;
    search::reindexing_rewrites_every_document(store).await;
    search::people_are_found_by_name_and_by_email_only_for_administrators(store).await;
    search::similar_documents_are_found_among_what_the_caller_may_read(store).await;
    search::searches_are_remembered_per_user_and_counted_for_everyone(store).await;
    related::related_items_are_found_among_what_the_caller_may_read(store).await;
    store.ping().await.expect("ping");
}

const MAX_DEPTH: u32 = 32;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", Uuid::now_v7().simple())
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        keycloak_id: None,
        username: Username::parse(&unique(name)).unwrap(),
        email: None,
        full_name: None,
        roles: vec![Role::User],
        password_hash: None,
        created_at: time::now(),
    }
}

fn new_notebook(owner: UserId, name: &str) -> NewNotebook {
    NewNotebook {
        id: NotebookId::new(),
        owner_id: owner,
        parent_id: None,
        name: NotebookName::parse(name).unwrap(),
        description: None,
        visibility: Visibility::Private,
        tags: vec![],
        compliance_settings: ComplianceSettings::default(),
        is_template: false,
        created_at: time::now(),
    }
}

fn limit(n: i64) -> Limit {
    Limit::parse(n).unwrap()
}

fn child_of(owner: UserId, parent: NotebookId, name: &str) -> NewNotebook {
    NewNotebook { parent_id: Some(parent), ..new_notebook(owner, name) }
}

fn collaboration(notebook: NotebookId, user: UserId, inviter: UserId, permission: Permission) -> Collaboration {
    let now = time::now();
    Collaboration {
        notebook_id: notebook,
        user_id: user,
        permission,
        status: CollaborationStatus::Pending,
        granted_by: inviter,
        granted_at: now,
        accepted_at: None,
        updated_at: now,
    }
}

fn token(user_id: UserId, family_id: TokenFamilyId, lifetime: TimeDelta) -> NewRefreshToken {
    let now = time::now();
    NewRefreshToken { token_hash: unique("hash"), user_id, family_id, issued_at: now, expires_at: now + lifetime }
}
