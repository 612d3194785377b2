"""The canonical state in `st.session_state`, restored from and mirrored to `st.query_params`.

Widget state is dropped when a page is not shown, so pages read their defaults from this state and
write submitted values back with `update`; every write refreshes the URL so a view is a shareable link.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from cosim.app.state import parse_query, to_query

STATE_KEY = "cosim_state"
PROBLEMS_KEY = "cosim_query_problems"


def init() -> dict[str, Any]:
    """On a session's first run, build the state from the URL; afterwards return it unchanged."""
    if STATE_KEY not in st.session_state:
        state, problems = parse_query(st.query_params.to_dict())
        st.session_state[STATE_KEY] = state
        st.session_state[PROBLEMS_KEY] = problems
    return st.session_state[STATE_KEY]


def get() -> dict[str, Any]:
    return init()


def update(**values: Any) -> dict[str, Any]:
    """Set fields of the canonical state and mirror the whole state to the query parameters."""
    state = init()
    state.update(values)
    mirror()
    return state


def mirror() -> None:
    """Write the state's non-default fields to `st.query_params` (only when they changed)."""
    want = to_query(init())
    have = st.query_params.to_dict()
    if have != want:
        st.query_params.from_dict(want)


def show_query_problems() -> None:
    """Tell the user once which shared-link values were ignored."""
    problems = st.session_state.pop(PROBLEMS_KEY, None)
    if problems:
        st.warning("Some link parameters were ignored: " + "; ".join(problems))
