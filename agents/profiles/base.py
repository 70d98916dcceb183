"""A provider profile: the tool set, base prompt and project-doc files one
model family is used to (CAL 2.4, 6). Building the prompt is pure: the SDK
reads the files and the environment and passes them in as text."""

from __future__ import annotations

from dataclasses import dataclass

from aos.agents.spec import ToolSpec

PROJECT_DOCS_BUDGET = 32 * 1024
PROJECT_DOCS_MARKER = "[Project instructions truncated at 32KB]"


@dataclass(frozen=True)
class Environment:
    """Facts for the ``<environment>`` block, gathered by the caller (never by the workflow)."""

    working_dir: str
    platform: str
    date: str  # YYYY-MM-DD
    model: str
    os_version: str = ""
    is_git: bool = False
    git_branch: str | None = None
    git_status: str | None = None  # short status summary
    recent_commits: tuple[str, ...] = ()
    knowledge_cutoff: str | None = None
    project_docs: tuple[tuple[str, str], ...] = ()  # (relative path, text), root first


def environment_block(env: Environment) -> str:
    lines = [
        "<environment>",
        f"Working directory: {env.working_dir}",
        f"Is git repository: {'true' if env.is_git else 'false'}",
    ]
    if env.git_branch:
        lines.append(f"Git branch: {env.git_branch}")
    if env.git_status:
        lines.append(f"Git status: {env.git_status}")
    if env.recent_commits:
        lines.append("Recent commits:\n" + "\n".join(f"  {c}" for c in env.recent_commits))
    lines.append(f"Platform: {env.platform}")
    if env.os_version:
        lines.append(f"OS version: {env.os_version}")
    lines.append(f"Today's date: {env.date}")
    lines.append(f"Model: {env.model}")
    if env.knowledge_cutoff:
        lines.append(f"Knowledge cutoff: {env.knowledge_cutoff}")
    lines.append("</environment>")
    return "\n".join(lines)


def project_docs_block(docs: tuple[tuple[str, str], ...]) -> str:
    """The project instruction files, root first, cut at 32 KB with the spec's marker."""
    if not docs:
        return ""
    text = "\n\n".join(f"## {path}\n\n{body.strip()}" for path, body in docs)
    if len(text.encode()) > PROJECT_DOCS_BUDGET:
        text = text.encode()[:PROJECT_DOCS_BUDGET].decode("utf-8", "ignore") + "\n" + PROJECT_DOCS_MARKER
    return "# Project instructions\n\n" + text


@dataclass(frozen=True)
class Profile:
    """``tools`` are in name order; ``doc_files`` are the instruction files
    this profile loads (``AGENTS.md`` plus the provider's own)."""

    name: str
    provider: str
    default_model: str
    base_prompt: str
    tools: tuple[ToolSpec, ...]
    doc_files: tuple[str, ...] = ("AGENTS.md",)
    context_window: int = 200_000
    parallel_tool_calls: bool = True

    def tool_names(self) -> list[str]:
        return [t.name for t in self.tools]

    def system_prompt(self, env: Environment, override: str | None = None) -> str:
        """Layers, later ones win: base, environment, tools, project docs, user override."""
        parts = [self.base_prompt.strip(), environment_block(env)]
        parts.append("Available tools: " + ", ".join(self.tool_names()) + ".")
        docs = project_docs_block(env.project_docs)
        if docs:
            parts.append(docs)
        if override:
            parts.append(override.strip())
        return "\n\n".join(parts)

    def with_tools(self, *tools: ToolSpec) -> Profile:
        """This profile with custom tools added; on a name collision the custom tool wins."""
        by_name = {t.name: t for t in self.tools}
        by_name.update({t.name: t for t in tools})
        return Profile(self.name, self.provider, self.default_model, self.base_prompt,
                       tuple(by_name[n] for n in sorted(by_name)), self.doc_files, self.context_window,
                       self.parallel_tool_calls)


def sorted_tools(*tools: ToolSpec) -> tuple[ToolSpec, ...]:
    return tuple(sorted(tools, key=lambda t: t.name))
