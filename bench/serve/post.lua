-- wrk script for quire serve (bench/serve/run.sh): POSTs JSON bodies read from
-- the file named by the environment variable BODIES (one JSON body per line),
-- cycling through them so consecutive requests ask different things. Adds the
-- bearer token from TOKEN when set. Non-2xx answers are counted by wrk itself
-- ("Non-2xx or 3xx responses") and reported by run.sh.
local bodies = {}
local i = 0

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
