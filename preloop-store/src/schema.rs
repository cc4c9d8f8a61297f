//! Table definitions shared by both backends (the SQL types are portable).

diesel::table! {
    approval_requests (id) {
        id -> Text,
        organization_id -> Text,
        call_id -> Text,
        state -> Text,
        requester_id -> Text,
        tool -> Text,
        token_hash -> Nullable<Text>,
        escalation_stage -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
        next_deadline -> Nullable<BigInt>,
        claimed_until -> Nullable<BigInt>,
        version -> BigInt,
        body -> Text,
    }
}

diesel::table! {
    grants (id) {
        id -> Text,
        organization_id -> Text,
        principal_id -> Text,
        tool -> Text,
        request_id -> Text,
        granted_by -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked -> Bool,
    }
}

diesel::table! {
    audit_heads (organization_id) {
        organization_id -> Text,
        sequence -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    audit_events (organization_id, sequence) {
        organization_id -> Text,
        sequence -> BigInt,
        timestamp -> BigInt,
        kind -> Text,
        body -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    policy_documents (organization_id) {
        organization_id -> Text,
        document -> Text,
        updated_at -> BigInt,
        version -> BigInt,
    }
}

diesel::table! {
    issues (id) {
        id -> Text,
        organization_id -> Text,
        tracker_id -> Text,
        key -> Text,
        project -> Text,
        state -> Text,
        updated_at -> BigInt,
        body -> Text,
        title -> Text,
        search_text -> Text,
    }
}

diesel::table! {
    /// The `issues` table with its SQLite embedding column (PostgreSQL's is a pgvector `vector`).
    #[sql_name = "issues"]
    sqlite_issue_vectors (id) {
        id -> Text,
        organization_id -> Text,
        tracker_id -> Text,
        key -> Text,
        project -> Text,
        state -> Text,
        body -> Text,
        embedding -> Nullable<Binary>,
    }
}

diesel::table! {
    organizations (id) {
        id -> Text,
        name -> Text,
        created_at -> BigInt,
        closed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        organization_id -> Text,
        email -> Text,
        name -> Nullable<Text>,
        roles -> Text,
        password_hash -> Nullable<Text>,
        disabled -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        organization_id -> Text,
        user_id -> Text,
        name -> Text,
        prefix -> Text,
        hash -> Text,
        scopes -> Text,
        expires_at -> Nullable<BigInt>,
        last_used_at -> Nullable<BigInt>,
        revoked -> Bool,
        created_at -> BigInt,
    }
}

diesel::joinable!(users -> organizations (organization_id));
diesel::allow_tables_to_appear_in_same_query!(organizations, users, api_keys);

/// The configuration-document tables, all of one shape (see `documents.rs`).
macro_rules! document_tables {
    ($($table:ident),*) => {
        $(
            diesel::table! {
                $table (organization_id, id) {
                    organization_id -> Text,
                    id -> Text,
                    parent_id -> Text,
                    name -> Text,
                    body -> Text,
                    updated_at -> BigInt,
                }
            }
        )*
    };
}

document_tables!(
    mcp_servers,
    mcp_server_tools,
    tool_configurations,
    trackers,
    projects,
    flows,
    flow_executions,
    hitl_sessions,
    channel_messages
);

diesel::table! {
    mcp_sessions (id) {
        id -> Text,
        state -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    mcp_session_owners (id) {
        id -> Text,
        owner -> Text,
        created_at -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(mcp_sessions, mcp_session_owners);
