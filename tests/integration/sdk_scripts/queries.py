"""IoT Hub's query language through ``query_iot_hub``: filters, projections, aggregates,
module twins, paging and a malformed query."""

from __future__ import annotations

from typing import Any

from azure.iot.hub.models import QuerySpecification
from scenario import emit, read_arguments, refusal, registry_manager, twin_view


def query(rm: Any, text: str) -> dict[str, Any]:
    """One page (the hub's default size) of a query's results."""
    result = rm.query_iot_hub(QuerySpecification(query=text))
    return {
        "type": result.type,
        "continuation": result.continuation_token,
        "items": [twin_view(item) for item in result.items],
    }


def all_pages(rm: Any, text: str, page_size: int) -> list[dict[str, Any]]:
    """Every page of a query, following continuation tokens as the SDK's users do."""
    pages = []
    token = None
    while True:
        result = rm.query_iot_hub(QuerySpecification(query=text), token, page_size)
        pages.append(
            {
                "continuation": result.continuation_token,
                "ids": [item.device_id for item in result.items],
            }
        )
        token = result.continuation_token
        if not token or len(pages) > 50:
            return pages


def main() -> None:
    args = read_arguments()
    rm = registry_manager(args["connection_string"], args["root_ca"])
    out = {name: query(rm, text) for name, text in args["queries"].items()}
    out["paged"] = all_pages(rm, args["paged_query"], args["page_size"])
    out["malformed"] = refusal(rm.query_iot_hub, QuerySpecification(query=args["malformed_query"]))
    emit(out)


if __name__ == "__main__":
    main()
