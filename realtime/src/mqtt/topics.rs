//! The MQTT topics of docs/API.md, in one place: what devices publish, what KREKI subscribes to, and
//! where acknowledgements go.

use uuid::Uuid;

use super::credentials::DeviceId;

/// Prefix of panic topics: a panic button publishes `kreki/v1/panic/{device_id}`.
pub const PANIC_PREFIX: &str = "kreki/v1/panic";
/// Prefix of location topics: a tracker publishes `kreki/v1/location/{user_id}`.
pub const LOCATION_PREFIX: &str = "kreki/v1/location";
/// Every panic topic (one level after the prefix, so acks are not matched).
pub const PANIC_FILTER: &str = "kreki/v1/panic/+";
/// Every location topic.
pub const LOCATION_FILTER: &str = "kreki/v1/location/+";
/// Every acknowledgement topic.
pub const ACK_FILTER: &str = "kreki/v1/panic/+/ack";

/// `kreki/v1/panic/{device_id}`.
pub fn panic(device: &DeviceId) -> String {
    format!("{PANIC_PREFIX}/{device}")
}

/// `kreki/v1/panic/{device_id}/ack`, where the alert id (or the reason for refusal) goes back.
pub fn ack(device: &DeviceId) -> String {
    format!("{PANIC_PREFIX}/{device}/ack")
}

/// `kreki/v1/location/{user_id}`.
pub fn location(user: Uuid) -> String {
    format!("{LOCATION_PREFIX}/{user}")
}

/// What an incoming topic names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A panic from this device (the id is checked in shape only).
    Panic(DeviceId),
    /// A position of this user.
    Location(Uuid),
}

/// Reads a topic KREKI subscribed to.
///
/// # Errors
/// Why the topic is not one of ours (a malformed device or user id, an unknown prefix).
pub fn route(topic: &str) -> Result<Route, String> {
    if let Some(rest) = topic
        .strip_prefix(PANIC_PREFIX)
        .and_then(|t| t.strip_prefix('/'))
    {
        return DeviceId::parse(rest)
            .map(Route::Panic)
            .map_err(|why| format!("device id in `{topic}` {why}"));
    }
    if let Some(rest) = topic
        .strip_prefix(LOCATION_PREFIX)
        .and_then(|t| t.strip_prefix('/'))
    {
        return Uuid::try_parse(rest)
            .map(Route::Location)
            .map_err(|_| format!("user id in `{topic}` is not a UUID"));
    }
    Err(format!("`{topic}` is not a KREKI device topic"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::credentials::DeviceKind;

    #[test]
    fn routes_round_trip() {
        let device = DeviceId::generate(DeviceKind::Panic);
        assert_eq!(route(&panic(&device)), Ok(Route::Panic(device.clone())));
        let user = Uuid::now_v7();
        assert_eq!(route(&location(user)), Ok(Route::Location(user)));
        assert!(route(&ack(&device)).is_err());
        assert!(route("kreki/v1/location/not-a-uuid").is_err());
        assert!(route("kreki/v1/panicx/pb-aaaaaaaaaaaaaaaaaaaa").is_err());
        assert!(route("other").is_err());
    }
}
