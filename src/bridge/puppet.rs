//! Puppets: the Matrix ghost of each Instagram user, registered on first
//! sight, with display name and avatar kept current. Each step is recorded
//! only once it succeeded, so a failure is retried on the next call.

use ruma::{OwnedUserId, UserId};

use crate::model::Participant;
use crate::store::PuppetRecord;

use super::pictures::picture_id;
use super::relay_error::RelayError;
use super::Bridge;

/// The puppet user id of an Instagram user id.
pub fn puppet_id(bridge: &Bridge, ig_user_id: &str) -> Result<OwnedUserId, RelayError> {
    bridge
        .namespace
        .puppet(ig_user_id)
        .ok_or_else(|| RelayError::InvalidId {
            what: "puppet user id for Instagram user",
            id: ig_user_id.to_owned(),
        })
}

/// The puppet of an Instagram user, registered, with name and avatar kept current.
pub async fn ensure_puppet(
    bridge: &Bridge,
    participant: &Participant,
) -> Result<OwnedUserId, RelayError> {
    let mxid = puppet_id(bridge, &participant.id)?;
    let stored = bridge.store.puppet(&participant.id).await?;
    let mut puppet = stored.clone().unwrap_or_else(|| PuppetRecord {
        ig_user_id: participant.id.clone(),
        mxid: mxid.to_string(),
        username: None,
        displayname: None,
        avatar_url: None,
        name_set: false,
        avatar_set: false,
        registered: false,
        avatar_id: None,
        avatar_hash: None,
    });

    if !puppet.registered {
        bridge
            .client
            .register_user(mxid.localpart())
            .await
            .map_err(RelayError::homeserver("registering a puppet"))?;
        puppet.registered = true;
        bridge.store.upsert_puppet(&puppet).await?;
    }
    if participant.handle.is_some() && puppet.username != participant.handle {
        puppet.username = participant.handle.clone();
        bridge.store.upsert_puppet(&puppet).await?;
    }
    update_name(bridge, &mxid, participant, &mut puppet).await?;
    if let Some(url) = participant.avatar_url.as_deref() {
        match update_avatar(bridge, &mxid, url, &mut puppet).await {
            // A picture that cannot be fetched must not hold up messages;
            // the next call tries again.
            Err(error @ RelayError::Picture { .. }) => {
                tracing::warn!(puppet = %mxid, %error, "cannot update a puppet's picture")
            }
            other => other?,
        }
    }
    Ok(mxid)
}

/// Sets the display name from the template when it changed. A participant
/// known only by id never replaces a name learnt earlier.
async fn update_name(
    bridge: &Bridge,
    mxid: &UserId,
    participant: &Participant,
    puppet: &mut PuppetRecord,
) -> Result<(), RelayError> {
    let anonymous = participant.name.is_none() && participant.handle.is_none();
    if anonymous && puppet.name_set {
        return Ok(());
    }
    let name = bridge.config.puppet_displayname(
        participant.name.as_deref(),
        participant.handle.as_deref(),
        &participant.id,
    );
    if puppet.name_set && puppet.displayname.as_deref() == Some(name.as_str()) {
        return Ok(());
    }
    bridge
        .client
        .set_displayname(mxid, Some(&name))
        .await
        .map_err(RelayError::homeserver("setting a puppet's display name"))?;
    puppet.displayname = Some(name);
    puppet.name_set = true;
    bridge.store.upsert_puppet(puppet).await?;
    Ok(())
}

/// Sets the avatar when the picture changed: downloaded when its id
/// differs, uploaded only when its bytes differ.
async fn update_avatar(
    bridge: &Bridge,
    mxid: &UserId,
    url: &str,
    puppet: &mut PuppetRecord,
) -> Result<(), RelayError> {
    let avatar_id = picture_id(url);
    if puppet.avatar_set && puppet.avatar_id.as_deref() == Some(avatar_id.as_str()) {
        return Ok(());
    }
    let known_hash = puppet
        .avatar_url
        .is_some()
        .then_some(puppet.avatar_hash.as_deref())
        .flatten();
    let uploaded = bridge
        .pictures
        .upload_if_changed(&bridge.client, mxid, url, known_hash)
        .await?;
    if let Some(uploaded) = uploaded {
        puppet.avatar_url = Some(uploaded.mxc.to_string());
        puppet.avatar_hash = Some(uploaded.hash);
        puppet.avatar_set = false;
    }
    if !puppet.avatar_set {
        let mxc = puppet.avatar_url.clone().map(Into::into);
        bridge
            .client
            .set_avatar_url(mxid, mxc)
            .await
            .map_err(RelayError::homeserver("setting a puppet's avatar"))?;
    }
    puppet.avatar_id = Some(avatar_id);
    puppet.avatar_set = true;
    bridge.store.upsert_puppet(puppet).await?;
    Ok(())
}
