"""The Streamlit explorer's support code: canonical state and query params, spec uploads, cached calls.

Pages live in `cosim/app/pages/` (one module per page, each runnable as a Streamlit page file and
importable for tests). Model logic stays in the cosim API; `cosim.app.compute` only calls it and
assembles what a page shows.
"""
