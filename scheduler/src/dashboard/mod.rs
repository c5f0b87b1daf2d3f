//! The driver's web dashboard and Prometheus endpoint, on one HTTP listener
//! (`driver.dashboard_bind`). The page is static HTML, CSS and plain
//! JavaScript compiled into the binary (no front-end toolchain); it reads
//! `/api/*` JSON (typed in [`page_data`]) and follows `/api/events`, a
//! server-sent event stream that pushes the overview (and the open job) when
//! the state changes or a worker reports.

mod driver_metrics;
mod page_data;
mod snapshot;

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use regatta_proto::axum;

use crate::driver::Driver;

/// How long a push waits after the first change it saw, so that a burst of
/// changes (a stage's tasks finishing together) makes one push, not hundreds.
const COALESCE: Duration = Duration::from_millis(250);

/// The dashboard's routes over `driver`.
pub fn router(driver: Driver) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/jobs/{id}", get(index)) // an id, or `latest`
        .route("/workers", get(index))
        .route("/app.js", get(app_js))
        .route("/style.css", get(style_css))
        .route("/api/overview", get(overview))
        .route("/api/jobs/{id}", get(job))
        .route("/api/events", get(events))
        .route("/metrics", get(metrics))
        .with_state(driver)
}

async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("assets/index.html"),
    )
        .into_response()
}

async fn app_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
        .into_response()
}

async fn style_css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/style.css"),
    )
        .into_response()
}

async fn overview(State(driver): State<Driver>) -> Json<page_data::Overview> {
    Json(snapshot::overview(&driver).await)
}

async fn job(State(driver): State<Driver>, Path(id): Path<u64>) -> Response {
    match snapshot::job(&driver, id) {
        Some(j) => Json(j).into_response(),
        None => (StatusCode::NOT_FOUND, format!("job-{id} is not known here")).into_response(),
    }
}

async fn metrics(State(driver): State<Driver>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            regatta_common::prometheus::CONTENT_TYPE,
        )],
        driver_metrics::render(&driver),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct EventsQuery {
    /// A job id, or `latest`: the newest job, followed as new ones come.
    job: Option<String>,
}

/// The job a page follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobRef {
    Id(u64),
    Latest,
}

impl JobRef {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "latest" => Some(Self::Latest),
            n => n.parse().ok().map(Self::Id),
        }
    }

    /// The id it names now (none for `latest` before the first job).
    fn resolve(self, driver: &Driver) -> Option<u64> {
        match self {
            Self::Id(id) => Some(id),
            Self::Latest => crate::driver::jobs_info(driver)
                .iter()
                .map(|j| j.job_id)
                .max(),
        }
    }
}

/// Pushes the overview, and the job the page shows, whenever the state
/// changes or a worker reports (its memory, its running tasks): no ticking.
async fn events(
    State(driver): State<Driver>,
    Query(q): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let followed = q.job.as_deref().and_then(JobRef::parse);
    let watches = (
        driver.consensus().state().subscribe(),
        driver.workers().subscribe_reports(),
    );
    let stream =
        futures::stream::unfold((true, watches), move |(first, (mut state, mut reports))| {
            let driver = driver.clone();
            async move {
                if !first {
                    // Either watch closing means the driver is going away.
                    tokio::select! {
                        r = state.changed() => r.ok()?,
                        r = reports.changed() => r.ok()?,
                    }
                    tokio::time::sleep(COALESCE).await;
                    state.mark_unchanged();
                    reports.mark_unchanged();
                }
                let update = page_data::Update {
                    overview: snapshot::overview(&driver).await,
                    job: followed.map(|job| {
                        job.resolve(&driver)
                            .and_then(|id| snapshot::job(&driver, id))
                    }),
                };
                let data = serde_json::to_string(&update).unwrap_or_default();
                let event = Event::default().data(data);
                Some((Ok(event), (false, (state, reports))))
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
