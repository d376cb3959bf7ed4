-- POST /login with HTTP Basic for one user (a success each time: no throttling).
wrk.method = "POST"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")
