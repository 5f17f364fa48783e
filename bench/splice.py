"""Write a subset's sections into an existing RESULTS.md, keeping every other section of the last full run.

``python -m bench.run --only rows`` measures one benchmark; rewriting the whole file would drop the other
sections' figures. Here a re-run section replaces the block under its ``## title`` (or is appended), its
summary rows replace the old ones, and a line under the header says which sections were re-run alone, when.
"""

from __future__ import annotations

from bench.common import Section


def replace_section(text: str, section: Section) -> str:
    """``text`` with the block from ``## title`` to the next ``## `` heading replaced by the section's."""
    heading = f"## {section.title}\n"
    block = section.markdown()
    start = text.find(heading)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + block
    end = text.find("\n## ", start + len(heading))
    return text[:start] + block + ("" if end < 0 else text[end:])


def replace_summary_rows(text: str, section: Section) -> str:
    """The summary table's rows of ``section`` replaced by its new verdicts (appended to the table)."""
    lines = text.split("\n")
    if "### Summary" not in lines:
        return text
    first = lines.index("### Summary") + 1
    rows = [i for i in range(first, len(lines)) if lines[i].startswith("| ")]
    table_end = next((i for i in range(rows[0], len(lines)) if not lines[i].startswith("| ")), len(lines)) \
        if rows else first
    kept = [line for line in lines[first:table_end] if not line.startswith(f"| {section.title} |")]
    new = [f"| {section.title} | {what} | {figure} | {target} | {verdict} |"
           for what, figure, target, verdict in section.verdicts]
    return "\n".join(lines[:first] + kept + new + lines[table_end:])


def splice(text: str, sections: list[Section], note: str) -> str:
    """``text`` (a RESULTS.md) with ``sections`` re-run: their blocks, summary rows and a dated note."""
    for section in sections:
        text = replace_summary_rows(replace_section(text, section), section)
    lines = text.split("\n")
    titles = ", ".join(section.title for section in sections)
    lines = [line for line in lines if not line.startswith(f"Re-run alone: {titles} ")]
    at = next((i for i, line in enumerate(lines) if line.startswith("Produced by ")), 0) + 1
    return "\n".join([*lines[:at], "", f"Re-run alone: {titles} {note}", *lines[at:]])
