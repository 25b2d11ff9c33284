//! Matrix side: the appservice API server and the homeserver client.
