//! The test upstream's tasks (the 2026-07-28 tasks extension): `slow` runs as a task for a
//! request that declared the extension, and finishes once its time has passed.

use rmcp::ErrorData;
use rmcp::model::{
    CreateTaskResult, DetailedTask, GetTaskResult, JsonObject, Task, TaskPayload, TaskStatus,
};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// One task of `slow`.
struct SlowTask {
    created: String,
    done_at: Instant,
    took: Duration,
    cancelled: bool,
}

fn tasks() -> MutexGuard<'static, HashMap<String, SlowTask>> {
    static TASKS: LazyLock<Mutex<HashMap<String, SlowTask>>> = LazyLock::new(Mutex::default);
    TASKS.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// Starts `slow` as a task that finishes after `took`.
pub fn start(took: Duration) -> CreateTaskResult {
    let id = format!("upstream-task-{}", uuid::Uuid::new_v4().simple());
    let created = now();
    tasks().insert(
        id.clone(),
        SlowTask {
            created: created.clone(),
            done_at: Instant::now() + took,
            took,
            cancelled: false,
        },
    );
    CreateTaskResult::new(
        Task::new(id, TaskStatus::Working, &created, &created).with_poll_interval_ms(50),
    )
}

/// `tasks/get`.
pub fn get(task_id: &str) -> Result<GetTaskResult, ErrorData> {
    let tasks = tasks();
    let task = tasks.get(task_id).ok_or_else(|| unknown(task_id))?;
    let payload = if task.cancelled {
        TaskPayload::Cancelled
    } else if Instant::now() >= task.done_at {
        let text = format!("slow done after {} ms", task.took.as_millis());
        let result = json!({"content": [{"type": "text", "text": text}]});
        TaskPayload::Completed {
            result: result.as_object().cloned().unwrap_or_else(JsonObject::new),
        }
    } else {
        TaskPayload::Working
    };
    let base = Task::new(task_id, payload.status(), &task.created, now());
    Ok(GetTaskResult::new(DetailedTask::new(base, payload)))
}

/// `tasks/cancel`: a task not yet done is cancelled.
pub fn cancel(task_id: &str) -> Result<(), ErrorData> {
    let mut tasks = tasks();
    let task = tasks.get_mut(task_id).ok_or_else(|| unknown(task_id))?;
    if Instant::now() < task.done_at {
        task.cancelled = true;
    }
    Ok(())
}

fn unknown(task_id: &str) -> ErrorData {
    ErrorData::invalid_params(format!("no task {task_id}"), None)
}
