"""The qualify HTTP service: a thin FastAPI layer over the engine. No business logic here.

    settings    configuration from QUALIFY_* environment variables
    state       the loaded rule base and mapping profiles; atomic hot reload
    channel     tells sibling worker processes that a reload happened
    security    API keys and the admin key (bearer)
    signatures  HubSpot v3, the generic t=,v1= scheme, HTTP basic auth
    inbound/    one adapter per CRM: authenticate a webhook, unwrap its events
    intake      group commit of webhook deliveries into the store
    store       SQL (SQLite or PostgreSQL): delivery ids, the outbox, what was written
    migrations/ the store's schema, as Alembic migrations
    outbox      fetch, score and write back queued CRM records; retries, dead letters
    crm/        one write-back client per CRM (HubSpot, Pipedrive)
    scoring     engine calls shared by the routes: metrics, logs, decision log
    bodies      strict JSON request bodies
    errors      one error shape; every exception mapped to a status
    middleware  request id, access log, request metrics
    metrics     Prometheus metrics (multi-process aware)
    logs        structured JSON logs and the optional decision log
    openapi     the OpenAPI document, with the lead schema of the loaded rule base
    schemas     request and response models
    deps        what routes depend on, as ``Annotated`` aliases
    routes/     one module per resource
    main        assembles the app (``create_app``); cli starts uvicorn (``qualify serve``)
"""
