"""The gate service: one long-running server for every gate whose run waits without a process.

A run of a deployment *suspends* at its gate, freeing its worker; the gate service serves that
gate's page to the person with the link, records their decision and resumes the run.

- :mod:`~pipelines.gate_service.ticket`: the file a suspended run leaves for its gate (the
  page's inputs, the token's digest, the deadline);
- :mod:`~pipelines.gate_service.registry`: the open gates, found from their tickets, each page
  built and freed, decisions recorded and runs resumed;
- :mod:`~pipelines.gate_service.resumes`: the threads that resume runs, one Prefect client each;
- :mod:`~pipelines.gate_service.auth`: per-gate tokens, HTTP basic auth for the rest;
- :mod:`~pipelines.gate_service.api`: the JSON API's request bodies;
- :mod:`~pipelines.gate_service.service`: the ASGI app and ``hill gates serve``;
- :mod:`~pipelines.gate_service.listing`: ``hill gates list`` and ``hill gates decide``,
  through Prefect's API.

Nothing is imported here: ``pipelines.gate`` reads tickets without loading the web stack.
"""
