-- wrk script for quire serve (bench/serve/run.sh): POSTs JSON bodies read from
-- the file named by the environment variable BODIES (one JSON body per line),
-- cycling through them so consecutive requests ask different things. Adds the
-- bearer token from TOKEN when set. Non-2xx answers are counted by wrk itself
-- ("Non-2xx or 3xx responses") and reported by run.sh.
-- With SECONDS_OUT set, each answer's top-level "seconds" (the retrieval time
-- /v1/search reports) is summed over all threads and written to that file as
-- "SUM COUNT" at the end: run.sh subtracts it from the server's CPU time.
local bodies = {}
local i = 0
local threads = {}
secs, nsecs = 0, 0 -- globals: done() reads them from each thread with thread:get

function setup(thread)
    threads[#threads + 1] = thread
end

function init(args)
    local f = assert(io.open(os.getenv("BODIES"), "r"))
    for line in f:lines() do
        if #line > 0 then bodies[#bodies + 1] = line end
    end
    f:close()
    -- threads start at different offsets
    i = math.random(#bodies) - 1
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    local tok = os.getenv("TOKEN")
    if tok and #tok > 0 then wrk.headers["Authorization"] = "Bearer " .. tok end
end

function request()
    i = i % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[i])
end

-- defined only when asked for: with a response() wrk hands every body to Lua
local seconds_out = os.getenv("SECONDS_OUT")
if seconds_out and #seconds_out > 0 then
    function response(status, headers, body)
        local v = body:match('^{[^%[]-"seconds":%s*([-%d%.eE+]+)')
        if v then
            secs = secs + tonumber(v)
            nsecs = nsecs + 1
        end
    end

    function done(summary, latency, requests)
        local s, n = 0, 0
        for _, t in ipairs(threads) do
            s = s + (t:get("secs") or 0)
            n = n + (t:get("nsecs") or 0)
        end
        local f = assert(io.open(seconds_out, "w"))
        f:write(string.format("%.9f %d\n", s, n))
        f:close()
    end
end
