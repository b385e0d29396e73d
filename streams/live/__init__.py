"""The live rooms page: `/`, `/rooms/<room_id>` and the JSON they poll."""
