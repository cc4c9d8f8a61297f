//! What can be wrong with `[channels]`: each message names the setting to fix.

/// Why the channels cannot be set up from `[channels]`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelsError {
    /// A `redact_keys` glob does not compile.
    #[error("[channels] redact_keys: `{pattern}`: {source}")]
    RedactPattern {
        /// The glob as written.
        pattern: String,
        /// What the glob compiler found.
        #[source]
        source: globset::Error,
    },
    /// The `redact_keys` globs do not compile together.
    #[error("[channels] redact_keys: {source}")]
    RedactSet {
        /// What the glob compiler found.
        #[source]
        source: globset::Error,
    },
    /// The HTTP client of the channels could not be built.
    #[error("cannot build the channels' HTTP client: {source}")]
    Client {
        /// The client builder's error.
        #[source]
        source: reqwest::Error,
    },
    /// `[channels.email]` `from` or `to` holds something that is not an address.
    #[error("[channels.email]: `{address}` is not an e-mail address: {source}")]
    EmailAddress {
        /// The address as written.
        address: String,
        /// Why it does not parse.
        #[source]
        source: lettre::address::AddressError,
    },
    /// `[channels.email]` `url` is not an SMTP URL.
    #[error("[channels.email] url is not a usable SMTP URL: {source}")]
    SmtpUrl {
        /// Why the transport refused it.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// `[channels.slack]` names no destination, or both.
    #[error("[channels.slack] needs either `bot_token` and `channel`, or `webhook_url`")]
    SlackDestination,
    /// `[channels.slack]` has no signing secret, so callbacks could not be verified.
    #[error("[channels.slack] needs the app's `signing_secret`")]
    SlackSigningSecret,
    /// `[channels.telegram]` `chat_id` is neither a number nor a name.
    #[error("[channels.telegram] chat_id must be a number or an @channel name")]
    TelegramChatId,
    /// `[channels.telegram]` receives updates by webhook without a secret to check them by.
    #[error("[channels.telegram] needs `webhook_secret` with updates = \"webhook\"")]
    TelegramNoWebhookSecret,
    /// `[channels.telegram]` `webhook_secret` has characters Telegram does not allow.
    #[error(
        "[channels.telegram] webhook_secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
    )]
    TelegramWebhookSecret,
}
