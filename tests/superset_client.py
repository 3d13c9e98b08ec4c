"""Drives Apache Superset against `leadline serve`, as a user of its UI would,
through its REST API and Flask's test client (no web server). Run with the
Python of Superset's own venv (tests/test_superset.py does):

    superset_client.py <sqlalchemy URI> <result.json>

Writes what Superset answered to result.json; fails on any answer that is
not a success, with Superset's message."""
import json
import sys

from superset.app import create_app

# The time range of the charts: what Superset sends as
# TO_TIMESTAMP('2026-06-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US').
TIME_RANGE = "2026-06-01T00:00:00 : 2026-09-01T00:00:00"


def main(uri, result_path):
    app = create_app()
    result = {}
    with app.app_context():
        client = app.test_client()

        def call(method, url, ok=(200, 201), **kwargs):
            response = getattr(client, method)(url, **kwargs)
            if response.status_code not in ok:
                raise SystemExit(f"{method.upper()} {url}: {response.status_code} {response.get_data(as_text=True)}")
            return response.json

        # A session as the UI's (the API's JWT login sets no user for
        # the commands that record an owner).
        login = client.post("/login/", data={"username": "admin", "password": "admin"})
        assert login.status_code == 302, login.get_data(as_text=True)

        result["test_connection"] = call("post", "/api/v1/database/test_connection/",
                                         json={"sqlalchemy_uri": uri, "database_name": "leadline"})
        database = call("post", "/api/v1/database/",
                        json={"sqlalchemy_uri": uri, "database_name": "leadline", "expose_in_sqllab": True})["id"]
        result["schemas"] = call("get", f"/api/v1/database/{database}/schemas/")["result"]
        result["tables"] = [t["value"] for t in
                            call("get", f"/api/v1/database/{database}/tables/?q=(schema_name:public)")["result"]]
        result["table_metadata"] = call(
            "get", f"/api/v1/database/{database}/table_metadata/?name=deployments&schema=public")["columns"]

        # A physical dataset on a table, a virtual one on dora_metrics.
        physical = call("post", "/api/v1/dataset/",
                        json={"database": database, "schema": "public", "table_name": "deployments"})
        virtual = call("post", "/api/v1/dataset/",
                       json={"database": database, "schema": "public", "table_name": "dora_weekly",
                             "sql": "SELECT * FROM dora_metrics('week')"})
        result["physical_columns"] = {c["column_name"]: c["is_dttm"] for c in physical["data"]["columns"]}
        result["virtual_columns"] = {c["column_name"]: c["is_dttm"] for c in virtual["data"]["columns"]}
        call("put", f"/api/v1/dataset/{physical['id']}/refresh")
        result["service_values"] = call(
            "get", f"/api/v1/datasource/table/{physical['id']}/column/service/values/")["result"]

        # A table chart over a time range, and a monthly time series.
        def chart(dataset, query):
            context = {"datasource": {"id": dataset, "type": "table"}, "force": True, "result_format": "json",
                       "result_type": "full", "queries": [{"row_limit": 1000, **query}]}
            answer = call("post", "/api/v1/chart/data", json=context)["result"][0]
            if answer["status"] != "success":
                raise SystemExit(f"chart data: {answer['error']}")
            return {"query": answer["query"], "data": answer["data"]}

        result["chart"] = chart(physical["id"], {
            "columns": ["service"], "metrics": ["count"], "orderby": [["service", True]],
            "filters": [{"col": "finished_at", "op": "TEMPORAL_RANGE", "val": TIME_RANGE}]})
        deploys = {"expressionType": "SIMPLE", "column": {"column_name": "deployments"}, "aggregate": "SUM",
                   "label": "deploys"}
        result["timeseries"] = chart(virtual["id"], {
            "columns": [{"timeGrain": "P1M", "columnType": "BASE_AXIS", "sqlExpression": "bucket_start",
                         "label": "bucket_start", "expressionType": "SQL"}],
            "metrics": [deploys], "orderby": [[deploys, True]],
            "filters": [{"col": "bucket_start", "op": "TEMPORAL_RANGE", "val": TIME_RANGE}]})

        # SQL Lab, with the upper-cased names Superset's formatter gives.
        result["sqllab"] = {}
        for n, sql in enumerate(["SELECT count(*) AS n FROM DORA_METRICS('week')",
                                 "SELECT service, count(*) AS n FROM deployments GROUP BY service ORDER BY service"]):
            answer = call("post", "/api/v1/sqllab/execute/",
                          json={"database_id": database, "sql": sql, "runAsync": False, "schema": "public",
                                "client_id": f"leadline{n}", "tab": "leadline"})
            result["sqllab"][sql] = {"executed": answer["query"]["executedSql"], "data": answer["data"]}
        # A query leadline refuses: SQL Lab shows leadline's message.
        refused = client.post("/api/v1/sqllab/execute/",
                              json={"database_id": database, "sql": "SELECT * FROM no_such_table", "runAsync": False,
                                    "schema": "public", "client_id": "leadline9", "tab": "leadline"})
        result["sqllab_refused"] = {"status": refused.status_code, "answer": refused.get_data(as_text=True)}

    with open(result_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
