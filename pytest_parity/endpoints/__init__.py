"""The endpoint layer: HTTP in, normalised responses out.

:mod:`.kinds` says what each endpoint kind accepts and speaks (pure data and functions),
:mod:`.http` sends requests with bounded concurrency, retries and timeouts, :mod:`.cache` keeps
answers already paid for, :mod:`.recording` records and replays a stack's answers. Importing the
package itself costs nothing: import the module you need (``pytest_parity.endpoints.http`` pulls
in httpx).
"""
