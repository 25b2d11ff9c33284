//! Why relaying to Matrix failed, and whether trying again later can help.

use crate::matrix::client::ClientError;
use crate::store::StoreError;

use super::media::MediaError;

/// A failure of the Matrix side of Instagram -> Matrix relaying.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("homeserver request failed while {doing}: {source}")]
    Homeserver {
        doing: &'static str,
        source: ClientError,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot bridge the media of Instagram item {item_id}: {source}")]
    Media { item_id: String, source: MediaError },
    #[error("cannot fetch Instagram item {item_id} again: {detail}")]
    Refetch { item_id: String, detail: String },
    #[error("{what} {id:?} is not a valid Matrix identifier")]
    InvalidId { what: &'static str, id: String },
    #[error("cannot download the picture {avatar_id}: {detail}")]
    Picture { avatar_id: String, detail: String },
}

impl RelayError {
    /// Builds the error mapper for one homeserver call.
    pub(crate) fn homeserver(doing: &'static str) -> impl FnOnce(ClientError) -> RelayError {
        move |source| RelayError::Homeserver { doing, source }
    }

    /// Whether the caller should retry later (homeserver down, 5xx, 429,
    /// database or network trouble), rather than give up on this event.
    pub fn is_transient(&self) -> bool {
        match self {
            RelayError::Homeserver { source, .. } => match source {
                ClientError::Unreachable { .. } => true,
                ClientError::Matrix { status, .. } => *status == 429 || *status >= 500,
                ClientError::Setup(_)
                | ClientError::Build { .. }
                | ClientError::Response { .. } => false,
            },
            RelayError::Store(_) => true,
            // Expired is final here: the item was already fetched again once.
            RelayError::Media { source, .. } => matches!(source, MediaError::Transient(_)),
            RelayError::Refetch { .. } | RelayError::Picture { .. } => true,
            RelayError::InvalidId { .. } => false,
        }
    }
}
