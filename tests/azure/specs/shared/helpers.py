def describe(rows: int, epochs: int) -> str:
    return f"rows={rows} epochs={epochs}"
