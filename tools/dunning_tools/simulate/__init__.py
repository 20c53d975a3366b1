"""`dunning simulate`: a candidate policy over a book of LoansTable items, before it goes live. Tooling only.

No AWS and no moto: the same pure functions the functions use (parse_loan, ladder, decisions,
compliance, compose) run over a JSON Lines book, hour by hour, as the planner and the sender would.
Never imported by a handler.
"""

from dunning_tools.simulate.book import BookItem, InputError, read_book
from dunning_tools.simulate.engine import DayResult, SimulationResult, simulate
from dunning_tools.simulate.prices import PriceTable, load_prices

__all__ = [
    "BookItem",
    "DayResult",
    "InputError",
    "PriceTable",
    "SimulationResult",
    "load_prices",
    "read_book",
    "simulate",
]
