"""Leave every run's summary as a Prefect artifact (counts only: never record bodies or secrets)."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.domain.report import artifact_key, summary_markdown, summary_rows
from tasks.domain.results import SyncReport


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(report: SyncReport) -> str:
    """A table artifact and a markdown summary keyed by app, container and env."""
    key = artifact_key("sync", report.app, report.container, report.env)
    create_table_artifact(key=key, table=summary_rows(report),
                          description=f"sync of {report.app}/{report.container} ({report.env})")
    markdown = summary_markdown(report)
    create_markdown_artifact(key=f"{key}-summary", markdown=markdown)
    return markdown
