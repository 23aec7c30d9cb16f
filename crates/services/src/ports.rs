//! The store ports each service uses. A service holds its own set, so what it may
//! touch is stated here, one field per port; the composition root fills a set from
//! the configured store with `of`.

use std::fmt;
use std::sync::Arc;

use aether_domain::store::{
    ActivityStore, ApiKeyStore, BlobDeletionStore, CollaborationStore, DocumentStore, JobStore, NotebookStore,
    SearchLogStore, SearchStore, SessionStore, Store, UserStore,
};

/// Declares a set of ports: the struct, `of` and a `Debug` that names it only.
macro_rules! port_set {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $port:ident,)+ }) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            $(pub $field: Arc<dyn $port>,)+
        }

        impl $name {
            /// Every port of the set from one store that implements them all.
            pub fn of(store: &Arc<dyn Store>) -> Self {
                Self { $($field: Arc::clone(store) as Arc<dyn $port>,)+ }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

port_set! {
    /// Local accounts and the password and refresh-token grants.
    AccountPorts { users: UserStore, sessions: SessionStore, activity: ActivityStore, }
}

port_set! {
    /// The hot reads behind authentication and permission checks (`CachedReads`).
    ReadPorts { users: UserStore, notebooks: NotebookStore, }
}

port_set! {
    /// Authentication, synchronisation, role administration and API keys.
    IdentityPorts { users: UserStore, api_keys: ApiKeyStore, activity: ActivityStore, }
}

port_set! {
    /// Notebooks, their hierarchy, sharing and their record of changes.
    NotebookPorts {
        notebooks: NotebookStore,
        collaborations: CollaborationStore,
        activity: ActivityStore,
        users: UserStore,
    }
}

port_set! {
    /// Uploads, processing, documents and the blobs they leave behind.
    DocumentPorts {
        jobs: JobStore,
        documents: DocumentStore,
        blob_deletions: BlobDeletionStore,
        notebooks: NotebookStore,
    }
}

port_set! {
    /// Search over what the caller may read.
    SearchPorts {
        search: SearchStore,
        log: SearchLogStore,
        notebooks: NotebookStore,
        documents: DocumentStore,
    }
}
