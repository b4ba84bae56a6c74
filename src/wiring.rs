//! Adapters between the service crates. Each crate declares the ports it needs in its own terms;
//! only the binary knows every crate, so the glue lives here, one small type per port.

use kreki_realtime::{Audience, Hub};
use uuid::Uuid;

/// Delivers LMS notifications (certificate expiry reminders) to the user's WebSocket, through the
/// hub's replay ring, so a volunteer who reconnects within the window still gets them. They are
/// also stored by the LMS and readable over HTTP, so a user never connected loses nothing.
pub struct HubNotifier(pub Hub);

impl kreki_lms::Notifier for HubNotifier {
    fn notify_user(&self, user: Uuid, message: serde_json::Value) {
        self.0.publish(Audience::User(user), message);
    }
}
